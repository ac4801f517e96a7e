#include "stream.hpp"

#include <algorithm>
#include <cstring>

#include <openssl/err.h>
#include <openssl/x509.h>

#include <salam/detail/contract.hpp>

namespace salam::tls::detail {

// The BIO that connects OpenSSL to a Stream's buffers: reads take
// ciphertext from the input, writes append it to the output.
struct BioAccess {
  static Stream& stream(BIO* bio) noexcept { return *static_cast<Stream*>(BIO_get_data(bio)); }

  static int read(BIO* bio, char* out, int size) noexcept {
    BIO_clear_retry_flags(bio);
    const int count = stream(bio).bio_read(out, size);
    if (count < 0) BIO_set_retry_read(bio);
    return count;
  }
  static int write(BIO* bio, const char* bytes, int size) noexcept {
    BIO_clear_retry_flags(bio);
    try {
      return stream(bio).bio_write(bytes, size);
    } catch (const std::bad_alloc&) {
      return -1;  // the library reports a failure
    }
  }
  static long control(BIO* /*bio*/, int command, long /*number*/, void* /*pointer*/) noexcept {
    return command == BIO_CTRL_FLUSH ? 1 : 0;
  }
  static int create(BIO* bio) noexcept {
    BIO_set_init(bio, 1);
    return 1;
  }

  static BIO_METHOD* method() {
    static BIO_METHOD* const method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "salam stream");
      salam::detail::expects(m != nullptr, "cannot create the TLS stream's BIO method");
      BIO_meth_set_read(m, &read);
      BIO_meth_set_write(m, &write);
      BIO_meth_set_ctrl(m, &control);
      BIO_meth_set_create(m, &create);
      return m;
    }();
    return method;
  }
};

namespace {

// The library's reason for the last failure, as static text.
std::string_view reason_of(unsigned long error) noexcept {
  if (error == 0) return "TLS failure";
  const char* reason = ERR_reason_error_string(error);
  return reason != nullptr ? std::string_view(reason) : std::string_view("TLS failure");
}

}  // namespace

Stream::Stream(SslPtr ssl, bool server) : ssl_(std::move(ssl)) {
  BIO* bio = BIO_new(BioAccess::method());
  if (bio == nullptr) throw std::bad_alloc();
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_.get(), bio, bio);  // one BIO both ways: takes its one reference
  SSL_set_app_data(ssl_.get(), this);
  SSL_set_msg_callback(ssl_.get(), &Stream::on_message);
  if (server) {
    SSL_set_accept_state(ssl_.get());
  } else {
    SSL_set_connect_state(ssl_.get());
  }
}

Stream::~Stream() = default;

Stream* Stream::of(const SSL* ssl) noexcept {
  return static_cast<Stream*>(SSL_get_app_data(ssl));
}

void Stream::add_input(std::span<const std::byte> bytes) {
  pending_.insert(pending_.end(), bytes.begin(), bytes.end());
}

bool Stream::has_input() const noexcept {
  return pending_used_ < pending_.size() || input_used_ < input_.size();
}

bool Stream::readable() const noexcept {
  return has_input() || input_ended_ || failed_ || SSL_pending(ssl_.get()) > 0 ||
         (SSL_get_shutdown(ssl_.get()) & SSL_RECEIVED_SHUTDOWN) != 0;
}

int Stream::bio_read(char* out, int size) noexcept {
  const auto wanted = static_cast<std::size_t>(size);
  std::size_t count = 0;
  if (pending_used_ < pending_.size()) {
    count = std::min(wanted, pending_.size() - pending_used_);
    std::memcpy(out, pending_.data() + pending_used_, count);
    pending_used_ += count;
    if (pending_used_ == pending_.size()) {
      pending_.clear();
      pending_used_ = 0;
    }
  }
  if (count < wanted && input_used_ < input_.size()) {
    const std::size_t more = std::min(wanted - count, input_.size() - input_used_);
    std::memcpy(out + count, input_.bytes().data() + input_used_, more);
    input_used_ += more;
    count += more;
  }
  if (count > 0) return static_cast<int>(count);
  return input_ended_ ? 0 : -1;
}

int Stream::bio_write(const char* bytes, int size) {
  const auto* begin = reinterpret_cast<const std::byte*>(bytes);
  output_.insert(output_.end(), begin, begin + size);
  return size;
}

void Stream::on_message(int write_p, int /*version*/, int content_type, const void* buf,
                        std::size_t len, SSL* ssl, void* /*arg*/) {
  if (write_p != 0 || content_type != SSL3_RT_HANDSHAKE || len == 0) return;
  if (*static_cast<const unsigned char*>(buf) != SSL3_MT_KEY_UPDATE) return;
  if (Stream* self = of(ssl)) self->note_key_update();
}

void Stream::note_key_update() noexcept {
  const TimePoint now = Clock::now();
  const double elapsed = std::chrono::duration<double>(now - last_key_update_).count();
  last_key_update_ = now;
  key_update_tokens_ =
      std::min(kKeyUpdateBurst, key_update_tokens_ + elapsed * kKeyUpdatesPerSecond);
  if (key_update_tokens_ < 1) {
    too_many_key_updates_ = true;
  } else {
    key_update_tokens_ -= 1;
  }
}

void Stream::settle() {
  if (input_used_ < input_.size()) {
    const auto rest = input_.bytes().subspan(input_used_);
    pending_.insert(pending_.end(), rest.begin(), rest.end());
  }
  input_.release();
  input_ = InputBuffer();
  input_used_ = 0;
}

Stream::Status Stream::settle_after(int result) {
  const int error = SSL_get_error(ssl_.get(), result);
  const unsigned long queued = ERR_peek_last_error();
  ERR_clear_error();  // the queue is the thread's: other connections must not see it
  settle();
  switch (error) {
    case SSL_ERROR_WANT_READ:
      return Status::want_read;
    case SSL_ERROR_ZERO_RETURN:
      return Status::closed;
    default:
      break;
  }
  // A peer that closes without close_notify, once the handshake is done,
  // has ended its side like any TCP peer; during the handshake it failed.
  const bool eof = (error == SSL_ERROR_SYSCALL && input_ended_) ||
                   ERR_GET_REASON(queued) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
  if (eof && SSL_is_init_finished(ssl_.get())) return Status::closed;
  failed_ = true;
  if (eof) {
    failure_ = "the peer closed the connection during the handshake";
  } else if (error == SSL_ERROR_SYSCALL) {
    failure_ = "TLS failure (out of memory)";
  } else if (ERR_GET_REASON(queued) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    // Which check failed says more: "certificate revoked", "unable to get
    // local issuer certificate", ...
    failure_ = X509_verify_cert_error_string(SSL_get_verify_result(ssl_.get()));
  } else {
    failure_ = reason_of(queued);
  }
  return Status::failed;
}

Stream::Status Stream::handshake() {
  if (failed_) return Status::failed;
  ERR_clear_error();
  const int result = SSL_do_handshake(ssl_.get());
  if (result == 1) {
    settle();
    return Status::ok;
  }
  return settle_after(result);
}

Stream::Status Stream::read(std::span<std::byte> into, std::size_t& count) {
  count = 0;
  if (failed_) return Status::failed;
  Status status = Status::ok;
  while (count < into.size()) {
    ERR_clear_error();
    std::size_t got = 0;
    const int result = SSL_read_ex(ssl_.get(), into.data() + count, into.size() - count, &got);
    if (too_many_key_updates_) {
      ERR_clear_error();
      settle();
      failed_ = true;
      failure_ = "too many KeyUpdate messages";
      return Status::failed;
    }
    if (result != 1) {
      status = settle_after(result);
      break;
    }
    count += got;
    // Another whole record may be waiting; stop at the first that is not.
    if (!has_input() && SSL_pending(ssl_.get()) == 0) break;
  }
  settle();
  if (count > 0) return Status::ok;  // a failure or the end shows on the next read
  return status;
}

Stream::Status Stream::write(std::span<const std::byte> bytes) {
  if (failed_) return Status::failed;
  if (bytes.empty()) return Status::ok;
  ERR_clear_error();
  std::size_t written = 0;
  const int result = SSL_write_ex(ssl_.get(), bytes.data(), bytes.size(), &written);
  if (result == 1 && written == bytes.size()) {
    settle();
    return Status::ok;
  }
  return settle_after(result);
}

bool Stream::close_notify() {
  if (failed_ || !SSL_is_init_finished(ssl_.get())) return false;
  ERR_clear_error();
  const int result = SSL_shutdown(ssl_.get());
  ERR_clear_error();
  settle();
  return result >= 0;
}

}  // namespace salam::tls::detail
