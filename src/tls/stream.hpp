// Stream: one TLS connection's state machine, without I/O.
//
// The TLS library reads ciphertext from what add_input() gave and writes
// ciphertext to output(); whoever drives a Stream moves those bytes (the
// TLS layer, over the engine's operations; the fuzzer, from its input).
// Nothing here touches a socket, so nothing here can block or raise
// SIGPIPE.
//
// Memory: input lent from the loop's pool is held only during one call;
// settle() (which every step calls before it returns) copies what is left
// of it, usually nothing, and gives the buffer back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/ssl.h>

#include <salam/buffer.hpp>
#include <salam/time.hpp>
#include <salam/tls.hpp>

namespace salam::tls::detail {

struct SslFree {
  void operator()(SSL* ssl) const noexcept { SSL_free(ssl); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

class Stream {
 public:
  enum class Status : std::uint8_t { ok, want_read, closed, failed };

  // Takes `ssl`, whose BIOs it sets; `server` says which side it plays.
  Stream(SslPtr ssl, bool server);
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();

  // Ciphertext from the peer.
  void add_input(InputBuffer bytes) noexcept { input_ = std::move(bytes), input_used_ = 0; }
  void add_input(std::span<const std::byte> bytes);
  // The peer closed its side: no more input.
  void end_input() noexcept { input_ended_ = true; }
  bool has_input() const noexcept;
  // Whether read() could return anything but want_read: input, decrypted
  // bytes, the end of input, or a failure or close_notify to report.
  bool readable() const noexcept;

  Status handshake();
  // Decrypts into `into` (as many records as are whole and fit); `count`
  // says how much.
  Status read(std::span<std::byte> into, std::size_t& count);
  // Encrypts all of `bytes` into output().
  Status write(std::span<const std::byte> bytes);
  // Queues close_notify; false if the stream cannot end cleanly (the
  // handshake did not finish, or it failed).
  bool close_notify();

  // Ciphertext to send.
  bool has_output() const noexcept { return !output_.empty(); }
  std::vector<std::byte> take_output() noexcept { return std::exchange(output_, {}); }

  // Why the last step failed: static text.
  std::string_view failure() const noexcept { return failure_; }
  bool failed() const noexcept { return failed_; }
  SSL* ssl() const noexcept { return ssl_.get(); }

  // KeyUpdate messages from the peer are allowed at this rate (a flood of
  // them costs a key derivation each).
  static constexpr double kKeyUpdatesPerSecond = 1;
  static constexpr double kKeyUpdateBurst = 8;

  // For the context's callbacks (see server_context.cpp).
  static Stream* of(const SSL* ssl) noexcept;
  std::vector<unsigned char> binding;         // what a resumed session must match
  std::string server_name;                    // as the client asked for it
  std::shared_ptr<const SavedSession> saved;  // a client's latest ticket

 private:
  friend struct BioAccess;
  int bio_read(char* out, int size) noexcept;
  int bio_write(const char* bytes, int size);
  static void on_message(int write_p, int version, int content_type, const void* buf,
                         std::size_t len, SSL* ssl, void* arg);
  Status settle_after(int result);
  void settle();
  void note_key_update() noexcept;

  SslPtr ssl_;
  InputBuffer input_;  // lent: kept during one step only
  std::size_t input_used_ = 0;
  std::vector<std::byte> pending_;  // input left over from earlier steps
  std::size_t pending_used_ = 0;
  std::vector<std::byte> output_;
  bool input_ended_ = false;
  bool failed_ = false;
  bool too_many_key_updates_ = false;
  std::string_view failure_;
  double key_update_tokens_ = kKeyUpdateBurst;
  TimePoint last_key_update_{};
};

}  // namespace salam::tls::detail
