// Fuzzes the server side of a TLS handshake through the code path the
// server uses: a ServerContext built as the daemon builds it (two
// certificates chosen by SNI, ALPN, client certificates optional, session
// tickets on) makes the Stream that tls::accept drives, and the input is
// the client's bytes.
//
// The input is cut into flights: each starts with one byte giving its
// length in units of 16 bytes (0: the rest of the input). After each
// flight the handshake takes a step; after the last the client's side
// ends. Once a handshake finishes (possible only with bytes a real client
// made), the rest is read as application data. For any input: no crash,
// no sanitizer report, no leak, the stream ends in a definite state, and a
// failure always has a reason.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>

#include <salam/tls.hpp>

#include "../tests/support/certificates.hpp"
#include "tls/server_context.hpp"
#include "tls/stream.hpp"

namespace {

using salam::tls::detail::Stream;

std::shared_ptr<const salam::tls::ServerContext> make_context() {
  using salam::testing::issue;
  const auto ca = issue({.common_name = "fuzz CA", .dns_names = {}, .is_ca = true});
  const auto alpha = issue({.common_name = "alpha.test", .dns_names = {"alpha.test"}}, &ca);
  const auto beta = issue({.common_name = "beta.test", .dns_names = {"*.beta.test"}}, &ca);
  salam::tls::ServerSettings settings;
  settings.certificates = {{{alpha.certificate + alpha.key, "alpha"}, {}},
                           {{beta.certificate + beta.key, "beta"}, {}}};
  settings.alpn = {"h2", "http/1.1"};
  settings.client_verify = salam::tls::ClientVerify::optional;
  settings.client_ca = {ca.certificate, "ca"};
  return salam::tls::ServerContext::create(settings);
}

void check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto context = make_context();
  std::unique_ptr<Stream> stream = context->impl().new_stream();
  check(stream != nullptr, "a stream can be made");
  std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
  Stream::Status status = Stream::Status::want_read;
  while (!input.empty() && status == Stream::Status::want_read) {
    const std::size_t units = std::to_integer<std::size_t>(input[0]);
    input = input.subspan(1);
    const std::size_t length = units == 0 ? input.size() : std::min(input.size(), units * 16);
    stream->add_input(input.first(length));
    input = input.subspan(length);
    status = stream->handshake();
    (void)stream->take_output();
  }
  if (status == Stream::Status::want_read) {
    stream->end_input();
    status = stream->handshake();
    check(status != Stream::Status::want_read, "the end of input ends the handshake");
  }
  if (status == Stream::Status::ok) {
    std::byte plain[4096];
    std::size_t count = 0;
    while (stream->read(plain, count) == Stream::Status::ok) {
    }
  }
  if (stream->failed()) check(!stream->failure().empty(), "a failure has a reason");
  return 0;
}
