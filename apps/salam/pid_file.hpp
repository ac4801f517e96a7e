// PidFile: `--pid-file FILE`, for init scripts and monitors that find the
// daemon by it.
//
// Written once the listeners are listening, atomically: the number goes to
// a temporary file beside it (created exclusively, never through a
// symbolic link), which is then renamed over FILE, so a reader sees either
// the old file or the whole new one. Removed at exit, but only if it still
// names this process (a successor may have written its own).
#pragma once

#include <string>

namespace salam::daemon {

class PidFile {
 public:
  PidFile() = default;
  PidFile(const PidFile&) = delete;
  PidFile& operator=(const PidFile&) = delete;
  ~PidFile() { remove(); }

  // Throws ConfigError("cannot write the pid file 'FILE': why").
  void write(const std::string& path);
  // Idempotent; never throws.
  void remove() noexcept;

 private:
  std::string path_;  // empty: nothing written
};

}  // namespace salam::daemon
