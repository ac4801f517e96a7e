#include "io/fault_plan.hpp"

#include <cerrno>
#include <charconv>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace salam::detail {

namespace {

constexpr std::array<std::string_view, kFaultKinds> kKindNames = {"accept", "read", "write",
                                                                  "timer", "buffer"};

// The errors a kernel (or the engine's own pool) can end these operations
// with. EAGAIN and EINTR are missing on purpose: the backends retry them
// and never hand them on; ECANCELED is the engine's own cancellation.
constexpr std::pair<std::string_view, int> kErrors[] = {
    {"EPERM", EPERM},
    {"EIO", EIO},
    {"EBADF", EBADF},
    {"ENOMEM", ENOMEM},
    {"EACCES", EACCES},
    {"EBUSY", EBUSY},
    {"EINVAL", EINVAL},
    {"ENFILE", ENFILE},
    {"EMFILE", EMFILE},
    {"ENOSPC", ENOSPC},
    {"EPIPE", EPIPE},
    {"EPROTO", EPROTO},
    {"ENOPROTOOPT", ENOPROTOOPT},
    {"EOPNOTSUPP", EOPNOTSUPP},
    {"ENETDOWN", ENETDOWN},
    {"ENETUNREACH", ENETUNREACH},
    {"ENETRESET", ENETRESET},
    {"ECONNABORTED", ECONNABORTED},
    {"ECONNRESET", ECONNRESET},
    {"ENOBUFS", ENOBUFS},
    {"ENOTCONN", ENOTCONN},
    {"ETIMEDOUT", ETIMEDOUT},
    {"ECONNREFUSED", ECONNREFUSED},
    {"EHOSTDOWN", EHOSTDOWN},
    {"EHOSTUNREACH", EHOSTUNREACH},
    {"ENONET", ENONET},
};

// The text as it can be shown in a message: printable ASCII as is,
// anything else as \xNN.
std::string quoted(std::string_view text) {
  std::string out = "'";
  for (const char c : text) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += c;
    } else {
      constexpr char kHex[] = "0123456789abcdef";
      const auto byte = static_cast<unsigned char>(c);
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  return out + "'";
}

[[noreturn]] void fail(std::string_view part, const std::string& problem) {
  throw std::invalid_argument("SALAM_FAULTS: " + quoted(part) + ": " + problem);
}

std::uint64_t parse_count(std::string_view item, std::string_view text) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc{} || stop != end) {
    fail(item, "expected a whole number, not " + quoted(text));
  }
  return value;
}

double parse_chance(std::string_view item, std::string_view text) {
  // Digits and one point only: from_chars alone would take "1e-2" or "nan".
  const bool plain = !text.empty() && text.find_first_not_of("0123456789.") == text.npos &&
                     text.find('.') == text.rfind('.');
  double value = 0;
  const char* end = text.data() + text.size();
  auto [stop, error] = std::from_chars(text.data(), end, value);
  if (!plain || error != std::errc{} || stop != end || value > 1) {
    fail(item, "p= takes a probability from 0 to 1, not " + quoted(text));
  }
  return value;
}

int parse_error(std::string_view item, FaultKind kind, std::string_view name) {
  // An operation that does not reach the kernel fails only as the engine
  // itself would make it fail.
  if (kind == FaultKind::timer && name != "ENOMEM") {
    fail(item, "a timer fails only with ENOMEM (the timer heap cannot grow)");
  }
  if (kind == FaultKind::buffer && name != "ENOBUFS") {
    fail(item, "a buffer fails only with ENOBUFS (the pool has none to lend)");
  }
  for (const auto& [known, value] : kErrors) {
    if (name == known) return value;
  }
  fail(item, "unknown error " + quoted(name) + " (an errno name such as ECONNRESET)");
}

FaultSchedule::When parse_when(std::string_view item, std::string_view conditions) {
  FaultSchedule::When when;
  bool has_after = false;
  bool has_every = false;
  while (!conditions.empty()) {
    const std::size_t colon = conditions.find(':');
    const std::string_view condition = conditions.substr(0, colon);
    conditions = colon == conditions.npos ? std::string_view{} : conditions.substr(colon + 1);
    if (colon != std::string_view::npos && conditions.empty()) fail(item, "nothing after ':'");
    const std::size_t equals = condition.find('=');
    const std::string_view name = condition.substr(0, equals);
    const std::string_view value =
        equals == condition.npos ? std::string_view{} : condition.substr(equals + 1);
    if (name == "after" && !has_after) {
      when.after = parse_count(item, value);
      has_after = true;
    } else if (name == "every" && !has_every && !when.chance) {
      when.every = parse_count(item, value);
      if (when.every == 0) fail(item, "every= counts from 1");
      has_every = true;
    } else if (name == "p" && !has_every && !when.chance) {
      when.chance = parse_chance(item, value);
    } else if (name == "after" || name == "every" || name == "p") {
      fail(item, "at most one after=, and one of every= or p=");
    } else {
      fail(item, "unknown condition " + quoted(condition) + " (expected every=N, after=N or p=P)");
    }
  }
  if (!has_after && !has_every && !when.chance) {
    fail(item, "say when it fails: every=N, after=N or p=P");
  }
  return when;
}

}  // namespace

FaultPlan parse_fault_plan(std::string_view text) {
  struct Rule {
    FaultKind kind;
    int error;
    FaultSchedule::When when;
  };
  std::vector<Rule> rules;
  std::optional<std::uint64_t> seed;
  std::string_view rest = text;
  while (true) {
    const std::size_t semicolon = rest.find(';');
    const std::string_view item = rest.substr(0, semicolon);
    const std::size_t equals = item.find('=');
    const std::string_view name = item.substr(0, equals);
    if (item.empty()) fail(text, "an empty rule (rules are separated by one ';')");
    if (equals == item.npos) fail(item, "expected KIND=ERROR:WHEN or seed=N");
    const std::string_view value = item.substr(equals + 1);
    if (name == "seed") {
      if (seed) fail(item, "seed= is given twice");
      seed = parse_count(item, value);
    } else {
      std::size_t kind = 0;
      while (kind < kFaultKinds && kKindNames[kind] != name)
        ++kind;
      if (kind == kFaultKinds) {
        fail(item, "unknown operation " + quoted(name) +
                       " (expected accept, read, write, timer, buffer or seed)");
      }
      for (const Rule& rule : rules) {
        if (rule.kind == static_cast<FaultKind>(kind))
          fail(item, "a second rule for " + quoted(name));
      }
      const std::size_t colon = value.find(':');
      const std::string_view error = value.substr(0, colon);
      if (colon == value.npos) fail(item, "say when it fails: every=N, after=N or p=P");
      rules.push_back(Rule{static_cast<FaultKind>(kind),
                           parse_error(item, static_cast<FaultKind>(kind), error),
                           parse_when(item, value.substr(colon + 1))});
    }
    if (semicolon == rest.npos) break;
    rest = rest.substr(semicolon + 1);
  }
  FaultPlan plan;
  for (const Rule& rule : rules) {
    const auto kind = static_cast<std::size_t>(rule.kind);
    // Each kind draws from a stream of its own.
    plan.rules[kind].emplace(rule.error, rule.when, seed.value_or(0) * kFaultKinds + kind);
  }
  return plan;
}

}  // namespace salam::detail
