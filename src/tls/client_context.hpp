// ClientContext::Impl and SavedSession: the client's side, for tests,
// benchmarks and programs that connect out.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <salam/tls.hpp>

#include "openssl.hpp"
#include "stream.hpp"

namespace salam::tls {

class SavedSession {
 public:
  explicit SavedSession(SSL_SESSION* session) noexcept : session_(session) {}
  SavedSession(const SavedSession&) = delete;
  SavedSession& operator=(const SavedSession&) = delete;
  ~SavedSession();
  SSL_SESSION* get() const noexcept { return session_; }

 private:
  SSL_SESSION* session_;
};

struct ClientContext::Impl {
  detail::SslCtxPtr context;
  std::vector<unsigned char> alpn;
  bool verify = false;

  std::unique_ptr<detail::Stream> new_stream(const std::string& server_name,
                                             const SavedSession* resume) const;
};

}  // namespace salam::tls
