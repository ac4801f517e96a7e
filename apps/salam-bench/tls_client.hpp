// TlsClient: one worker's side of TLS (--tls): the handshake on each new
// connection, through libsalam's tls::connect, and the session the next
// connection resumes (--tls-resume).
//
// Each worker resumes the session its own previous connection got, as one
// returning client would. TLS 1.2 delivers its ticket inside the handshake;
// TLS 1.3 sends tickets after it, so the session is known only once the
// connection has read something (see awaits_ticket()).
//
// Threading: a worker's, on its thread's loop.
#pragma once

#include <memory>

#include <salam/connection.hpp>
#include <salam/task.hpp>
#include <salam/time.hpp>
#include <salam/tls.hpp>

#include "workload.hpp"

namespace salam::bench {

class TlsClient {
 public:
  // Runs the handshake on `connection`, offering the saved session with
  // --tls-resume. False if it failed: that is the operation's error,
  // counted here.
  Task<bool> handshake(ThreadContext& context, Connection& connection, ThreadContext::Phase phase,
                       Deadline deadline);
  // Takes the session `connection` got, if it got one, for the next
  // handshake. Call it after reading: TLS 1.3 tickets come after the
  // handshake, ahead of the server's first bytes.
  void keep_session(const ThreadContext& context, Connection& connection);
  // Whether --tls-resume still waits for this connection's ticket: TLS 1.3
  // gave none with the handshake.
  bool awaits_ticket(const ThreadContext& context, Connection& connection) const;

 private:
  std::shared_ptr<const tls::SavedSession> session_;
  bool tls1_3_ = false;  // what the last handshake negotiated
};

}  // namespace salam::bench
