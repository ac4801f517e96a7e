// Options: salam-bench's command line.
//
// Bad input is one clear message naming the option, and exit status 2
// (as for the daemon); --help prints the usage and exits 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <salam/address.hpp>
#include <salam/loop.hpp>
#include <salam/time.hpp>
#include <salam/tls.hpp>

namespace salam::bench {

enum class Workload : std::uint8_t { greet, banner, echo, discard, hold, burst, handshake };

std::string_view to_string(Workload workload) noexcept;
// Throws std::invalid_argument naming the accepted workloads.
Workload parse_workload(std::string_view text);

// "10s", "500ms", "250us", "2m", "1.5s"; a bare number is seconds.
// Throws std::invalid_argument.
Duration parse_duration(std::string_view text);
// "1.5s", "250ms": for the report.
std::string format_duration(Duration duration);

struct Options {
  SocketAddress target = SocketAddress::parse("127.0.0.1:8888");
  Workload workload = Workload::greet;
  // Connections in flight at once (hold: connections held; burst: clients
  // connecting at the same instant).
  unsigned concurrency = 64;
  // Run this long after the warm-up, unless `requests` is set: then run
  // until that many operations have ended.
  Duration duration = std::chrono::seconds(10);
  std::uint64_t requests = 0;
  Duration warmup = Duration::zero();
  // A deadline for each operation as a whole (connect, send, receive).
  Duration timeout = std::chrono::seconds(10);
  std::string message = "Hello, server!";
  std::string expect = "Hello, client!";
  // Bytes per round trip (echo) or per write (discard).
  std::size_t size = 0;
  // Send FIN after the message (greet) or at once (banner), for servers
  // that read until end of file before they answer.
  bool half_close = false;
  unsigned threads = 1;
  // Spread connections over 127.0.0.1 .. 127.0.0.N (0: let the kernel pick).
  unsigned source_addresses = 0;
  int server_pid = 0;
  // hold: connections opened per second (0: all at once).
  unsigned connect_rate = 20000;
  BackendKind backend = BackendKind::automatic;
  // Another process to charge apart (a proxy's upstream, which does part
  // of the work the server is asked for): its CPU per operation.
  int upstream_pid = 0;

  // TLS, through libsalam's tls::connect: every workload then runs over
  // it, and `handshake` measures the handshakes themselves.
  bool tls = false;
  std::string tls_server_name;  // SNI; empty: none
  std::string tls_ca_file;      // verify the server against it; empty: no verification
  // Each worker's next connection offers the session its previous one got.
  bool tls_resume = false;
  // Only this version; none: 1.2 or 1.3, 1.3 preferred.
  std::optional<tls::Version> tls_version;

  bool json = false;
  // Show the progress line (on a terminal only).
  bool progress = false;

  // The size actually used: `size`, or the workload's default.
  std::size_t payload_size() const noexcept;
};

// Parses argv. On --help prints usage and exits 0; on bad input prints
// the reason and exits 2.
Options parse_options(int argc, char** argv);

}  // namespace salam::bench
