// The environment of a program run for a connection.
#pragma once

#include <string>
#include <vector>

#include <salam/connection.hpp>

#include "../services/service.hpp"

namespace salam::daemon::exec {

// The UCSPI variables exactly as tcpserver (Debian's ucspi-tcp-ipv6) sets
// them with -H and -R: PROTO=TCP or TCP6, TCPLOCALIP, TCPLOCALPORT,
// TCPREMOTEIP, TCPREMOTEPORT and their TCP6 twins (an IPv4 address
// mapped); no TCPLOCALHOST, TCPREMOTEHOST or TCPREMOTEINFO (salam asks
// neither DNS nor ident). The remote is the client a trusted PROXY header
// named; the balancer is in SALAMPEERIP and SALAMPEERPORT. On a Unix
// socket, ucspi-unix's: PROTO=UNIX, UNIXLOCALPATH, UNIXREMOTEPID,
// UNIXREMOTEEUID, UNIXREMOTEEGID. On TLS, mod_ssl's and ucspi-ssl's names:
// SSL_PROTOCOL, SSL_CIPHER, SSL_TLS_SNI, SSL_CLIENT_S_DN. Then `configured`
// (exec-env), except names already set: those describe the connection.
std::vector<std::string> environment(const std::vector<std::string>& configured,
                                     const Connection& client, const SessionFacts& facts);

}  // namespace salam::daemon::exec
