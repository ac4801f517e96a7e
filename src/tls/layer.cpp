// The TLS layer: drives a Stream over the connection's own operations.
//
// One task may read while another writes. Ciphertext goes out through one
// flush at a time: a write waits for a flush in progress; a read that
// produced output of its own (a KeyUpdate's answer) leaves it to a flush in
// progress, or flushes it itself.
#include <algorithm>
#include <cerrno>
#include <memory>

#include <openssl/err.h>

#include <salam/event.hpp>
#include <salam/tls.hpp>

#include "../engine.hpp"
#include "client_context.hpp"
#include "server_context.hpp"
#include "stream.hpp"

namespace salam::tls {

namespace {

using detail::Stream;
using Engine = salam::detail::Engine;

// Plaintext per read into a buffer of the layer's own: one whole record.
constexpr std::size_t kRecord = 16 * 1024;
// Plaintext encrypted per round of a long write, so that what one write
// holds in ciphertext stays bounded.
constexpr std::size_t kWriteChunk = 64 * 1024;

class TlsLayer final : public salam::detail::Layer {
 public:
  TlsLayer(Loop& loop, std::shared_ptr<const void> context, std::unique_ptr<Stream> stream)
      : loop_(&loop), context_(std::move(context)), stream_(std::move(stream)) {}

  Stream& stream() noexcept { return *stream_; }

  Task<Handshake> handshake(Connection& connection, Deadline deadline);

  // The plaintext goes into memory of its own, taken only once the stream
  // has something to decrypt: a connection waiting for input holds none.
  Task<Result<InputBuffer>> read(Connection& connection, std::size_t max_bytes,
                                 Deadline deadline) override {
    const std::size_t room = std::min(max_bytes, kRecord);
    for (;;) {
      Stream::Status status = Stream::Status::want_read;
      if (stream_->readable()) {
        auto bytes = std::make_unique_for_overwrite<std::byte[]>(room);
        std::size_t count = 0;
        status = stream_->read({bytes.get(), room}, count);
        if (status == Stream::Status::ok) co_return InputBuffer(std::move(bytes), count);
      }
      if (status == Stream::Status::closed) co_return InputBuffer();
      if (auto error = co_await await_more(connection, status, deadline)) co_return error;
    }
  }

  Task<Result<std::size_t>> read_some(Connection& connection, std::span<std::byte> into,
                                      Deadline deadline) override {
    co_return co_await fill(connection, into, deadline);
  }

  Task<std::error_code> write_all(Connection& connection, std::span<const std::byte> bytes,
                                  Deadline deadline) override {
    while (!bytes.empty()) {
      const auto chunk = bytes.first(std::min(bytes.size(), kWriteChunk));
      if (stream_->write(chunk) != Stream::Status::ok) co_return tls_failure();
      if (auto error = co_await flush(connection, deadline)) co_return error;
      bytes = bytes.subspan(chunk.size());
    }
    co_return std::error_code();
  }

  std::vector<std::byte> farewell() noexcept override {
    if (flushing_) return {};  // a write was cut short: the stream is broken
    try {
      if (!stream_->close_notify()) return {};
      return stream_->take_output();
    } catch (const std::bad_alloc&) {
      return {};
    }
  }

 private:
  Task<Result<std::size_t>> fill(Connection& connection, std::span<std::byte> into,
                                 Deadline deadline);
  Task<std::error_code> await_more(Connection& connection, Stream::Status status,
                                   Deadline deadline);
  Task<std::error_code> flush(Connection& connection, Deadline deadline);
  // Reads ciphertext into the stream; an error, or none.
  Task<std::error_code> receive(Connection& connection, Deadline deadline);

  Loop* loop_;
  std::shared_ptr<const void> context_;  // the SSL_CTX's callbacks use it
  std::unique_ptr<Stream> stream_;
  bool flushing_ = false;
  std::unique_ptr<Event> flushed_;  // made the first time a write must wait
};

Task<std::error_code> TlsLayer::receive(Connection& connection, Deadline deadline) {
  auto input = co_await Engine::raw_read(connection, Engine::buffer_size(*loop_), deadline);
  if (!input) co_return input.error();
  if (input->empty()) {
    stream_->end_input();
  } else {
    stream_->add_input(std::move(*input));
  }
  co_return std::error_code();
}

Task<std::error_code> TlsLayer::flush(Connection& connection, Deadline deadline) {
  while (flushing_) {
    if (!flushed_) flushed_ = std::make_unique<Event>(*loop_);
    flushed_->reset();
    if (!co_await flushed_->wait(deadline)) co_return timed_out();
  }
  flushing_ = true;
  std::error_code error;
  while (!error && stream_->has_output()) {
    const std::vector<std::byte> bytes = stream_->take_output();
    error = co_await Engine::raw_write_all(connection, bytes, deadline);
  }
  flushing_ = false;
  if (flushed_) flushed_->set();
  co_return error;
}

Task<Result<std::size_t>> TlsLayer::fill(Connection& connection, std::span<std::byte> into,
                                         Deadline deadline) {
  for (;;) {
    std::size_t count = 0;
    const Stream::Status status = stream_->read(into, count);
    if (status == Stream::Status::ok) co_return count;
    if (status == Stream::Status::closed) co_return std::size_t{0};
    if (auto error = co_await await_more(connection, status, deadline)) co_return error;
  }
}

// After a read that gave no bytes: what the stream has to send (the
// session ticket after a handshake, a KeyUpdate's answer, an alert) goes
// out — unless a write is flushing already and will take it — and then,
// if the stream wants input, the socket is read. A read that returns bytes
// leaves what is to send for the handler's next write, which sends it in
// the same system call (a greeting's ticket and reply go together).
// Returns the error that ends the read, or none to try again.
Task<std::error_code> TlsLayer::await_more(Connection& connection, Stream::Status status,
                                           Deadline deadline) {
  if (stream_->has_output() && !flushing_) {
    const std::error_code error = co_await flush(connection, deadline);
    if (error && status == Stream::Status::want_read) co_return error;
  }
  if (status == Stream::Status::failed) co_return tls_failure();
  co_return co_await receive(connection, deadline);
}

Task<Handshake> TlsLayer::handshake(Connection& connection, Deadline deadline) {
  Handshake outcome;
  for (;;) {
    const Stream::Status status = stream_->handshake();
    // Done: what is left to send (a server's session ticket) goes with the
    // first write, or before the first wait for input (see fill()).
    if (status == Stream::Status::ok) co_return outcome;
    if (stream_->has_output()) {
      // An alert after a failure goes out too, if the peer still listens.
      if (auto error = co_await flush(connection, deadline);
          error && status != Stream::Status::failed) {
        outcome.error = error;
        co_return outcome;
      }
    }
    if (status != Stream::Status::want_read) {
      outcome.error = tls_failure();
      outcome.detail = stream_->failed() ? stream_->failure()
                                         : std::string_view("the peer closed during the handshake");
      co_return outcome;
    }
    if (auto error = co_await receive(connection, deadline)) {
      outcome.error = error;
      co_return outcome;
    }
  }
}

std::string subject_of(SSL* ssl) {
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer == nullptr) return {};
  detail::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) return {};
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  return length > 0 ? std::string(data, static_cast<std::size_t>(length)) : std::string();
}

void describe(SessionInfo& info, SSL* ssl, const Stream& stream) {
  info.version = SSL_get_version(ssl);
  if (const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl))
    info.cipher = SSL_CIPHER_get_name(cipher);
  info.server_name = stream.server_name;
  const unsigned char* alpn = nullptr;
  unsigned int alpn_length = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_length);
  if (alpn != nullptr) info.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_length);
  info.peer_subject = subject_of(ssl);
  info.resumed = SSL_session_reused(ssl) == 1;
}

TlsLayer* layer_of(Connection& connection) noexcept {
  return dynamic_cast<TlsLayer*>(Engine::layer(connection));
}

// Installs `stream` on `connection` and runs the handshake.
Task<Handshake> run_handshake(Connection& connection, std::shared_ptr<const void> context,
                              std::unique_ptr<Stream> stream, Deadline deadline) {
  Handshake outcome;
  if (!stream) {
    ERR_clear_error();
    outcome.error = errno_code(ENOMEM);
    co_return outcome;
  }
  if (Engine::layer(connection) != nullptr) {
    outcome.error = errno_code(EALREADY);
    co_return outcome;
  }
  const TimePoint started = Clock::now();
  auto owned = std::make_unique<TlsLayer>(connection.loop(), std::move(context), std::move(stream));
  TlsLayer& layer = *owned;
  const std::vector<std::byte> early = Engine::install_layer(connection, std::move(owned));
  if (!early.empty()) layer.stream().add_input(early);
  outcome = co_await layer.handshake(connection, deadline);
  if (outcome) describe(outcome.info, layer.stream().ssl(), layer.stream());
  outcome.info.duration = Clock::now() - started;
  co_return outcome;
}

}  // namespace

Task<Handshake> accept(Connection& connection, std::shared_ptr<const ServerContext> context,
                       Deadline deadline) {
  auto stream = context->impl().new_stream();
  co_return co_await run_handshake(connection, std::move(context), std::move(stream), deadline);
}

Task<Handshake> connect(Connection& connection, std::shared_ptr<const ClientContext> context,
                        std::string server_name, Deadline deadline,
                        std::shared_ptr<const SavedSession> resume) {
  auto stream = context->impl().new_stream(server_name, resume.get());
  if (stream) stream->server_name = server_name;
  co_return co_await run_handshake(connection, std::move(context), std::move(stream), deadline);
}

std::shared_ptr<const SavedSession> saved_session(Connection& connection) {
  TlsLayer* layer = layer_of(connection);
  if (layer == nullptr) return nullptr;
  if (layer->stream().saved) return layer->stream().saved;
  // TLS 1.2 renews a resumed session's ticket in place, without a new
  // session to report: the connection's own session is the one to keep.
  SSL* ssl = layer->stream().ssl();
  SSL_SESSION* current = SSL_get0_session(ssl);
  if (SSL_version(ssl) == TLS1_2_VERSION && current != nullptr &&
      SSL_SESSION_is_resumable(current) == 1) {
    return std::make_shared<const SavedSession>(SSL_get1_session(ssl));
  }
  return nullptr;
}

std::string_view failure_detail(Connection& connection) noexcept {
  TlsLayer* layer = layer_of(connection);
  return layer != nullptr && layer->stream().failed() ? layer->stream().failure()
                                                      : std::string_view();
}

std::error_code tls_failure() noexcept {
  return {static_cast<int>(Errc::tls_failure), salam_category()};
}

}  // namespace salam::tls
