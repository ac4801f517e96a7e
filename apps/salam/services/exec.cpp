// exec: a program per connection, as tcpserver runs one.
//
// The program is started by the spawner process (exec/spawner.hpp) with a
// local socket as its stdin and stdout, and another as its stderr. This
// side relays: the client's bytes to the program's stdin, its stdout to
// the client, each line of its stderr to the log. Relaying, rather than
// handing the program the client's socket, is what lets the same program
// serve TLS clients, clients behind a PROXY header (whose first bytes salam
// has read already) and Unix sockets, keeps the byte counts and timeouts
// of every other service, and ends the connection when the program ends,
// whatever descendants of it still hold its descriptors.
//
// A run ends when the program exits. Before that, the first of: the client
// going (reset, idle for idle-timeout in both directions, a write it takes
// none of), exec-timeout, or the drain, sends SIGTERM to the program's
// process group, and SIGKILL kKillGrace later. Once the program has
// exited, the rest of its output is relayed for at most kOutputAfterExit.
#include <array>
#include <csignal>
#include <cstring>
#include <string>

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <salam/event.hpp>
#include <salam/log.hpp>
#include <salam/printable.hpp>
#include <salam/scope.hpp>
#include <salam/shard_context.hpp>

#include "../exec/environment.hpp"
#include "../exec/program.hpp"
#include "../exec/spawner.hpp"
#include "service.hpp"

namespace salam::daemon {

namespace {

using exec::Reply;
using exec::ReplyKind;

constexpr Duration kKillGrace = 3s;
constexpr Duration kStartTimeout = 5s;  // for the spawner's first answer
constexpr Duration kOutputAfterExit = 1s;
constexpr Duration kTick = 1s;  // how often a run looks at the drain and its deadlines
constexpr std::size_t kMaxStderrLine = 1024;
constexpr std::size_t kStderrBudget = 64 * 1024;  // bytes of stderr logged per run

// A static string for every wait status: the access record's detail.
std::string_view status_detail(int status) {
  static const auto table = [] {
    std::array<std::string, 256 + NSIG> text;
    for (int code = 0; code < 256; ++code)
      text[static_cast<std::size_t>(code)] = fmt::format("exit status {}", code);
    for (int number = 1; number < NSIG; ++number) {
      const char* name = ::sigabbrev_np(number);
      text[static_cast<std::size_t>(256 + number)] =
          name != nullptr ? fmt::format("killed by SIG{}", name)
                          : fmt::format("killed by signal {}", number);
    }
    return text;
  }();
  if (WIFEXITED(status)) return table[static_cast<std::size_t>(WEXITSTATUS(status))];
  if (WIFSIGNALED(status) && WTERMSIG(status) > 0 && WTERMSIG(status) < NSIG) {
    return table[static_cast<std::size_t>(256 + WTERMSIG(status))];
  }
  return "ended";
}

// Counts the runs of a program; refuses past its limit.
class ChildSlot {
 public:
  explicit ChildSlot(const exec::ExecProgram& program) : program_(program) {
    taken_ = program_.children.fetch_add(1) < program_.max_children;
  }
  ~ChildSlot() { program_.children.fetch_sub(1); }
  ChildSlot(const ChildSlot&) = delete;
  ChildSlot& operator=(const ChildSlot&) = delete;
  explicit operator bool() const { return taken_; }

 private:
  const exec::ExecProgram& program_;
  bool taken_;
};

// What the tasks of one run share.
struct Run {
  Connection& client;
  Connection control;  // to the spawner
  Connection stdio;    // the program's stdin and stdout
  Connection errors;   // its stderr
  const ServiceOptions& options;
  const SessionFacts& facts;
  std::int32_t pid = 0;
  std::optional<Ending> ending;             // the first reason to stop the program, if any
  TimePoint terminated = TimePoint::max();  // when SIGTERM went
  bool killed = false;
  TimePoint last_activity = Clock::now();
  Event output_done;

  Run(Connection& the_client, LocalPair&& the_control, LocalPair&& the_stdio,
      LocalPair&& the_errors, const ServiceOptions& the_options, const SessionFacts& the_facts)
      : client(the_client),
        control(std::move(the_control.here)),
        stdio(std::move(the_stdio.here)),
        errors(std::move(the_errors.here)),
        options(the_options),
        facts(the_facts),
        output_done(the_client.loop()) {}

  // Sent past the Connection, which allows one write at a time: a signal is
  // one small message on a socket that holds many.
  void signal(int number) const {
    const exec::Signal message{number};
    (void)::send(control.fd(), &message, sizeof message, MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  void terminate() {
    if (terminated != TimePoint::max()) return;
    signal(SIGTERM);
    terminated = Clock::now();
  }
  void stop(Ending why) {
    if (!ending) ending = why;
    terminate();
  }
};

Task<Result<Reply>> next_reply(Connection& control, Deadline deadline) {
  auto message = co_await control.read(sizeof(Reply), deadline);
  if (!message) co_return message.error();
  if (message->size() != sizeof(Reply)) co_return errno_code(EPROTO);  // or end of file
  Reply reply{};
  std::memcpy(&reply, message->bytes().data(), sizeof reply);
  co_return reply;
}

// The client's bytes to the program's stdin; the client's end of file
// closes it.
Task<> feed(Run& run) {
  const Duration idle = run.options.idle_timeout;
  for (;;) {
    auto input = co_await run.client.read(64 * 1024, idle);
    if (!input && input.error() == timed_out()) {
      if (Clock::now() - run.last_activity < idle) continue;  // the output moves
      run.stop(CloseReason::timeout_idle);
      break;
    }
    if (!input) {
      if (input.error() != cancelled())
        run.stop(ending_for(input.error(), CloseReason::timeout_idle));
      break;
    }
    if (input->empty()) {
      (void)run.stdio.shutdown_write();
      break;
    }
    run.last_activity = Clock::now();
    const auto error = co_await run.stdio.write_all(input->bytes(), idle);
    if (error == timed_out()) {
      run.stop(Ending(CloseReason::timeout_idle, "the program read none of its input"));
      break;
    }
    if (error) break;  // the program closed its stdin, or the run is over
  }
}

// The program's stdout to the client.
Task<> relay_output(Run& run) {
  for (;;) {
    auto output = co_await run.stdio.read(64 * 1024);
    if (!output || output->empty()) {
      // The program is done writing: so is the connection (TLS cannot
      // half-close: its end comes with the close).
      if (output && run.facts.tls == nullptr) (void)run.client.shutdown_write();
      break;
    }
    run.last_activity = Clock::now();
    const auto error = co_await run.client.write_all(output->bytes(), run.options.write_timeout);
    if (error) {
      if (error != cancelled()) run.stop(ending_for(error, CloseReason::timeout_write));
      break;
    }
  }
  run.output_done.set();
}

// The program's stderr, a line at a time, into the log; never to the client.
class ErrorLines {
 public:
  explicit ErrorLines(const Run& run) : run_(run) {}
  void add(std::string_view bytes) {
    while (!bytes.empty()) {
      const auto newline = bytes.find('\n');
      const std::size_t take = std::min(newline == std::string_view::npos ? bytes.size() : newline,
                                        kMaxStderrLine - line_.size());
      line_.append(bytes.substr(0, take));
      bytes.remove_prefix(take);
      const bool ended = !bytes.empty() && bytes.front() == '\n';
      if (ended) bytes.remove_prefix(1);
      if (ended || line_.size() == kMaxStderrLine) emit();
    }
  }
  void finish() {
    if (!line_.empty()) emit();
    if (dropped_ > 0) {
      log::info("{} pid {}: {} more bytes of stderr not logged", where(), run_.pid, dropped_);
    }
  }

 private:
  std::string where() const {
    const auto client = run_.facts.client(run_.client);
    return client ? fmt::format("{} client {}", run_.facts.listener, *client)
                  : std::string(run_.facts.listener);
  }
  void emit() {
    if (logged_ + line_.size() > kStderrBudget) {
      dropped_ += line_.size();
    } else {
      logged_ += line_.size();
      log::info("{} pid {}: {}", where(), run_.pid, printable(line_, kMaxStderrLine));
    }
    line_.clear();
  }

  const Run& run_;
  std::string line_;
  std::size_t logged_ = 0;
  std::size_t dropped_ = 0;
};

Task<> log_errors(Run& run) {
  ErrorLines lines(run);
  for (;;) {
    auto input = co_await run.errors.read(4096);
    if (!input || input->empty()) break;
    lines.add(
        std::string_view(reinterpret_cast<const char*>(input->bytes().data()), input->size()));
  }
  lines.finish();
}

std::string_view hand_over_failure(int error) {
  switch (error) {
    case EAGAIN:
      return "the spawner is behind";
    case ENOTCONN:
      return "no spawner: salam started with neither an exec listener nor its sandbox";
    default:
      return "the spawner is gone";
  }
}

// Waits for the program's exit, stopping it when a deadline or the drain
// says so. Returns its wait status, or nothing if the run was cut short.
Task<std::optional<int>> supervise(Run& run, Duration timeout) {
  const TimePoint deadline = timeout > Duration::zero() ? Clock::now() + timeout : TimePoint::max();
  const auto shard = ShardContext::current();
  for (;;) {
    const TimePoint now = Clock::now();
    TimePoint wake = std::min(now + kTick, deadline);
    if (run.terminated != TimePoint::max() && !run.killed)
      wake = std::min(wake, run.terminated + kKillGrace);
    auto reply = co_await next_reply(run.control, Deadline(wake));
    if (reply && reply->kind == ReplyKind::exited) co_return reply->value;
    if (!reply && reply.error() == cancelled()) {
      run.stop(CloseReason::shutdown);  // the drain deadline: the spawner kills the rest
      co_return std::nullopt;
    }
    if (!reply && reply.error() != timed_out()) {
      run.stop(Ending(CloseReason::exec_failed, "the spawner is gone"));
      co_return std::nullopt;
    }
    const TimePoint later = Clock::now();
    if (later >= deadline) run.stop(CloseReason::exec_timeout);
    if (shard && shard->stopping()) run.terminate();  // the drain asks the program to end
    if (run.terminated != TimePoint::max() && !run.killed && later >= run.terminated + kKillGrace) {
      run.signal(SIGKILL);
      run.killed = true;
    }
  }
}

}  // namespace

Task<Ending> serve_exec(Connection& client, const ServiceOptions& options,
                        const SessionFacts& facts) {
  const exec::ExecProgram& program = *options.exec;
  const ChildSlot slot(program);
  if (!slot) co_return CloseReason::limit_children;
  Loop& loop = client.loop();
  auto control = local_pair(loop, SOCK_SEQPACKET);
  if (!control) co_return Ending(CloseReason::server_error, control.error().value());
  auto stdio = local_pair(loop, SOCK_STREAM);
  if (!stdio) co_return Ending(CloseReason::server_error, stdio.error().value());
  auto errors = local_pair(loop, SOCK_STREAM);
  if (!errors) co_return Ending(CloseReason::server_error, errors.error().value());

  exec::Request request = program.base;
  request.env = exec::environment(program.base.env, client, facts);
  const std::vector<std::byte> encoded = exec::encode(request);
  // The request goes first, so that it waits for the spawner on arrival.
  if (::send(control->here.fd(), encoded.data(), encoded.size(), MSG_DONTWAIT | MSG_NOSIGNAL) !=
      static_cast<ssize_t>(encoded.size())) {
    co_return Ending(CloseReason::server_error, errno);
  }
  const int handed = exec::hand_over(control->there.get(), stdio->there.get(), errors->there.get());
  if (handed != 0) co_return Ending(CloseReason::exec_failed, hand_over_failure(handed));
  control->there.reset();
  stdio->there.reset();
  errors->there.reset();

  Run run(client, std::move(*control), std::move(*stdio), std::move(*errors), options, facts);
  auto started = co_await next_reply(run.control, kStartTimeout);
  if (!started || started->kind == ReplyKind::exited) {
    co_return Ending(CloseReason::exec_failed, "the spawner did not answer");
  }
  if (started->kind == ReplyKind::failed) {
    co_return Ending(CloseReason::exec_failed, errno_name(started->value));
  }
  run.pid = started->value;

  TaskScope relays;
  relays.spawn(feed(run));
  relays.spawn(relay_output(run));
  relays.spawn(log_errors(run));
  const std::optional<int> status = co_await supervise(run, program.timeout);
  if (status) {
    // Output the program wrote just before it exited is still on its way.
    const bool all_out = co_await run.output_done.wait(kOutputAfterExit);
    (void)all_out;  // past it, descendants hold the output open: the run is over anyway
  }
  run.stdio.close();
  run.errors.close();
  (void)client.shutdown_read();  // ends the feed's read
  co_await relays.join();
  if (run.ending) co_return *run.ending;
  co_return Ending(CloseReason::done, status_detail(status.value_or(0)));
}

}  // namespace salam::daemon
