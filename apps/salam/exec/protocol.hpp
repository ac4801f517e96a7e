// What the daemon and its spawner process say to each other.
//
// The spawner (spawner.hpp) runs the exec service's programs: it is forked
// before the daemon starts any thread, so that the daemon itself never
// forks a multi-threaded process, and it keeps none of the daemon's
// descriptors or confinement.
//
// For each program run, the daemon
//   1. makes three local socket pairs: `control` (SOCK_SEQPACKET), `stdio`
//      and `stderr` (SOCK_STREAM);
//   2. writes the Request, encoded by encode(), as one message on control;
//   3. sends one byte on the spawner's channel carrying the far ends of all
//      three (SCM_RIGHTS), and closes its copies of them.
// The spawner answers on control: Reply{started, pid} or Reply{failed,
// errno}, and later Reply{exited, wait status}. The daemon may send
// Signal messages meanwhile; they go to the program's process group.
// Closing control before `exited` kills that group.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace salam::daemon::exec {

// Resource limits, as setrlimit(2) takes them; unset ones stay the spawner's.
enum class Limit : std::uint8_t { address_space, processes, files, cpu_seconds };
inline constexpr std::size_t kLimits = 4;

struct Request {
  std::string path;
  std::vector<std::string> argv;
  std::vector<std::string> env;  // NAME=VALUE
  std::optional<std::uint32_t> uid;
  std::optional<std::uint32_t> gid;
  std::vector<std::uint32_t> groups;  // supplementary, with uid: replace the spawner's
  std::array<std::optional<std::uint64_t>, kLimits> limits{};
  bool sandbox = false;  // exec-sandbox: no new privileges, the child filter
};

// The largest request the spawner reads: argv and env beyond it are refused
// by the configuration already (see program.cpp).
inline constexpr std::size_t kMaxRequest = 128 * 1024;
inline constexpr std::size_t kMaxStrings = 4096;

std::vector<std::byte> encode(const Request& request);
// Null if `bytes` is not a well-formed request.
std::optional<Request> decode(std::span<const std::byte> bytes);

enum class ReplyKind : std::uint32_t { started = 1, failed = 2, exited = 3 };
struct Reply {
  ReplyKind kind;
  std::int32_t value;  // pid, errno, or wait status
};

struct Signal {
  std::int32_t number;
};

}  // namespace salam::daemon::exec
