#include "tls_client.hpp"

#include <string_view>

namespace salam::bench {

Task<bool> TlsClient::handshake(ThreadContext& context, Connection& connection,
                                ThreadContext::Phase phase, Deadline deadline) {
  const Options& options = context.options();
  std::shared_ptr<const tls::SavedSession> offered = options.tls_resume ? session_ : nullptr;
  const bool offering = offered != nullptr;
  const tls::Handshake done =
      co_await tls::connect(connection, context.tls(), options.tls_server_name, deadline, offered);
  if (!done) {
    context.failed(phase, done.error, done.detail);
    co_return false;
  }
  context.handshake_done(phase, done.info, offering);
  tls1_3_ = done.info.version == std::string_view("TLSv1.3");
  // A session the server refused is not offered again; one it resumed is,
  // until a newer ticket replaces it (a TLS 1.2 server may resume without
  // issuing one).
  if (!done.info.resumed) session_.reset();
  keep_session(context, connection);
  co_return true;
}

void TlsClient::keep_session(const ThreadContext& context, Connection& connection) {
  if (!context.options().tls_resume) return;
  if (auto saved = tls::saved_session(connection)) session_ = std::move(saved);
}

bool TlsClient::awaits_ticket(const ThreadContext& context, Connection& connection) const {
  return context.options().tls_resume && tls1_3_ && tls::saved_session(connection) == nullptr;
}

}  // namespace salam::bench
