// Landlock: the files the process may still open, and how.
//
// Threading: applies to the calling thread and the threads it starts
// afterwards, not to those already running: call it before any other.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace salam::daemon {

// What may be done beneath a path.
enum class Access : std::uint8_t {
  read,     // open files for reading
  execute,  // read and execute files (the binary, the loader and libraries)
  write,    // open files for writing, and create regular files (a log, after rotation)
  sockets,  // create and remove Unix sockets
  replace,  // read, create, write, remove and rename regular files (the pid file)
};

struct PathRule {
  std::string path;  // a directory (the rule covers what is beneath) or a file
  Access access;
};

// Restricts the file system to `rules`, as far as this kernel's Landlock
// can (best effort, by its ABI version); paths that do not exist are left
// out. Returns what was done, or why nothing was (a kernel without
// Landlock), for a log line. Throws std::runtime_error if the kernel has
// Landlock but refuses.
std::string restrict_file_system(const std::vector<PathRule>& rules);

}  // namespace salam::daemon
