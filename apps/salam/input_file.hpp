// The one way salam reads a file it is given — the configuration, access
// rules, quotes, certificates and keys — at start and at every reload alike: it never blocks and
// never reads without a bound.
//
// The file is opened non-blocking and must be a regular file: a directory,
// a FIFO, a socket or a device is refused before anything is read from it
// (a FIFO nobody writes to would block an open; /dev/zero never ends).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace salam::daemon {

inline constexpr std::size_t kMaxConfigFile = 4 << 20;
inline constexpr std::size_t kMaxAccessFile = 64 << 20;
inline constexpr std::size_t kMaxQuotesFile = 16 << 20;
inline constexpr std::size_t kMaxPemFile = 1 << 20;  // a certificate chain, a key, CAs, CRLs

// The whole file, or nothing and `why` says what is wrong ("is a
// directory", "larger than 4 MiB", the system's error).
std::optional<std::string> read_input_file(const std::string& path, std::size_t limit,
                                           std::string& why);

// The same, throwing ConfigError("WHERE: cannot read WHAT 'PATH': why").
std::string read_input_file_or_throw(const std::string& path, std::size_t limit,
                                     std::string_view what, std::string_view where);

}  // namespace salam::daemon
