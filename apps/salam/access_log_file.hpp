// The access log's file, and reopening it for log rotation.
//
// logrotate moves the file away and sends SIGHUP; the daemon then opens the
// path anew and puts the new file under the same descriptor number with
// dup2(2). Shards write with that number and never see it closed, so no
// record is lost or written to a wrong file during the switch.
//
// Threading: main thread only (shards only write to the descriptor).
#pragma once

#include <string>

namespace salam::daemon {

class AccessLogFile {
 public:
  AccessLogFile() = default;
  AccessLogFile(const AccessLogFile&) = delete;
  AccessLogFile& operator=(const AccessLogFile&) = delete;
  ~AccessLogFile();

  // Sends the access records to `path` (opened anew even if it is the
  // current one), or with the other log lines if `path` is empty. Returns
  // an error message, or an empty string. `path` must be a regular file
  // (not in /proc or /sys, where writes go nowhere), a FIFO with a reader,
  // a socket or a character device (/dev/stdout, /dev/null).
  std::string open(const std::string& path);

 private:
  int fd_ = -1;
};

}  // namespace salam::daemon
