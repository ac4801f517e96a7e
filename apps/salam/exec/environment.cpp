#include "environment.hpp"

#include <string_view>

#include <fmt/format.h>
#include <sys/socket.h>

namespace salam::daemon::exec {

namespace {

void add(std::vector<std::string>& env, std::string_view name, std::string_view value) {
  env.push_back(fmt::format("{}={}", name, value));
}

// The address as tcpserver writes it: dotted quad, or compact IPv6.
std::string ip_of(const SocketAddress& address) {
  return address.without_v4_mapping().ip_string();
}

// The same as the TCP6 variables have it: an IPv4 address mapped.
std::string ip6_of(const SocketAddress& address) {
  const SocketAddress plain = address.without_v4_mapping();
  return plain.is_v4() ? "::ffff:" + plain.ip_string() : plain.ip_string();
}

void add_tcp(std::vector<std::string>& env, const SocketAddress& local,
             const SocketAddress& remote) {
  const bool v6 = remote.without_v4_mapping().is_v6();
  add(env, "PROTO", v6 ? "TCP6" : "TCP");
  add(env, "TCPLOCALIP", ip_of(local));
  add(env, "TCPLOCALPORT", std::to_string(local.port()));
  add(env, "TCPREMOTEIP", ip_of(remote));
  add(env, "TCPREMOTEPORT", std::to_string(remote.port()));
  add(env, "TCP6LOCALIP", ip6_of(local));
  add(env, "TCP6LOCALPORT", std::to_string(local.port()));
  add(env, "TCP6REMOTEIP", ip6_of(remote));
  add(env, "TCP6REMOTEPORT", std::to_string(remote.port()));
}

void add_unix(std::vector<std::string>& env, const Connection& client, const SessionFacts& facts) {
  add(env, "PROTO", "UNIX");
  std::string_view path = facts.listener;
  if (path.starts_with("unix:")) path.remove_prefix(5);
  add(env, "UNIXLOCALPATH", path);
  ucred peer{};
  socklen_t length = sizeof peer;
  if (::getsockopt(client.fd(), SOL_SOCKET, SO_PEERCRED, &peer, &length) == 0) {
    add(env, "UNIXREMOTEPID", std::to_string(peer.pid));
    add(env, "UNIXREMOTEEUID", std::to_string(peer.uid));
    add(env, "UNIXREMOTEEGID", std::to_string(peer.gid));
  }
}

bool names(std::string_view entry, std::string_view name) {
  return entry.size() > name.size() && entry.starts_with(name) && entry[name.size()] == '=';
}

}  // namespace

std::vector<std::string> environment(const std::vector<std::string>& configured,
                                     const Connection& client, const SessionFacts& facts) {
  std::vector<std::string> env;
  env.reserve(configured.size() + 16);
  const auto remote = facts.client(client);
  if (!remote) {
    add_unix(env, client, facts);
  } else if (const auto local = client.local()) {
    add_tcp(env, *local, *remote);
  }
  if (const auto balancer = facts.balancer(client)) {
    add(env, "SALAMPEERIP", ip_of(*balancer));
    add(env, "SALAMPEERPORT", std::to_string(balancer->port()));
  }
  if (facts.tls != nullptr) {
    add(env, "SSL_PROTOCOL", facts.tls->version);
    add(env, "SSL_CIPHER", facts.tls->cipher);
    if (!facts.tls->server_name.empty()) add(env, "SSL_TLS_SNI", facts.tls->server_name);
    if (!facts.tls->peer_subject.empty()) add(env, "SSL_CLIENT_S_DN", facts.tls->peer_subject);
  }
  const std::size_t described = env.size();
  for (const auto& entry : configured) {
    const std::string_view name(entry.data(), entry.find('='));
    bool taken = false;
    for (std::size_t i = 0; i < described && !taken; ++i)
      taken = names(env[i], name);
    if (!taken) env.push_back(entry);
  }
  return env;
}

}  // namespace salam::daemon::exec
