// A child process for tests: started with pipes on stdout and stderr,
// killed and reaped when the handle goes out of scope.
#pragma once

#include <string>
#include <vector>

#include <sys/types.h>

#include <salam/time.hpp>

namespace salam::testing {

class ChildProcess {
 public:
  explicit ChildProcess(std::vector<std::string> argv);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const noexcept { return pid_; }
  // Reads one line of stdout (without the newline); empty at EOF/timeout.
  std::string read_line(Duration timeout);
  // Everything written to stderr so far (non-blocking).
  std::string drain_stderr();
  bool alive();
  // Sends `signal` and waits up to `timeout`; returns the exit status, or
  // -1 if it did not exit (it is then killed).
  int stop(int signal, Duration timeout);

 private:
  pid_t pid_ = -1;
  int stdout_ = -1;
  int stderr_ = -1;
  std::string stdout_buffer_;
  std::string stderr_text_;
  int status_ = -1;
  bool reaped_ = false;
};

}  // namespace salam::testing
