#include "protocol.hpp"

#include <cstring>
#include <limits>

namespace salam::daemon::exec {

namespace {

// The layout: a fixed header of 32-bit words, the groups, the limits, then
// NUL-terminated strings (path, argv, env).
constexpr std::uint32_t kMagic = 0x73616c31;  // "sal1"
constexpr std::uint64_t kUnset = std::numeric_limits<std::uint64_t>::max();

struct Header {
  std::uint32_t magic;
  std::uint32_t argc;
  std::uint32_t envc;
  std::uint32_t ngroups;
  std::uint32_t uid;  // kNoId: unset
  std::uint32_t gid;
  std::uint32_t flags;
  std::uint32_t reserved;
};
constexpr std::uint32_t kNoId = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint32_t kSandbox = 1;

template <typename T>
void put(std::vector<std::byte>& out, const T& value) {
  const auto* bytes = reinterpret_cast<const std::byte*>(&value);
  out.insert(out.end(), bytes, bytes + sizeof value);
}

void put_string(std::vector<std::byte>& out, std::string_view text) {
  const auto* bytes = reinterpret_cast<const std::byte*>(text.data());
  out.insert(out.end(), bytes, bytes + text.size());
  out.push_back(std::byte{0});
}

class Reader {
 public:
  explicit Reader(std::span<const std::byte> bytes) : bytes_(bytes) {}
  template <typename T>
  bool get(T& value) {
    if (bytes_.size() < sizeof value) return false;
    std::memcpy(&value, bytes_.data(), sizeof value);
    bytes_ = bytes_.subspan(sizeof value);
    return true;
  }
  bool get_string(std::string& text) {
    const auto* begin = reinterpret_cast<const char*>(bytes_.data());
    const void* end = std::memchr(begin, 0, bytes_.size());
    if (end == nullptr) return false;
    text.assign(begin, static_cast<const char*>(end));
    bytes_ = bytes_.subspan(text.size() + 1);
    return true;
  }
  bool done() const { return bytes_.empty(); }

 private:
  std::span<const std::byte> bytes_;
};

}  // namespace

std::vector<std::byte> encode(const Request& request) {
  std::vector<std::byte> out;
  const Header header{kMagic,
                      static_cast<std::uint32_t>(request.argv.size()),
                      static_cast<std::uint32_t>(request.env.size()),
                      static_cast<std::uint32_t>(request.groups.size()),
                      request.uid.value_or(kNoId),
                      request.gid.value_or(kNoId),
                      request.sandbox ? kSandbox : 0,
                      0};
  put(out, header);
  for (const auto group : request.groups)
    put(out, group);
  for (const auto& limit : request.limits)
    put(out, limit.value_or(kUnset));
  put_string(out, request.path);
  for (const auto& arg : request.argv)
    put_string(out, arg);
  for (const auto& variable : request.env)
    put_string(out, variable);
  return out;
}

std::optional<Request> decode(std::span<const std::byte> bytes) {
  Reader in(bytes);
  Header header{};
  if (!in.get(header) || header.magic != kMagic) return std::nullopt;
  if (header.argc == 0 || header.argc > kMaxStrings || header.envc > kMaxStrings ||
      header.ngroups > 65536) {
    return std::nullopt;
  }
  Request request;
  if (header.uid != kNoId) request.uid = header.uid;
  if (header.gid != kNoId) request.gid = header.gid;
  request.sandbox = (header.flags & kSandbox) != 0;
  request.groups.resize(header.ngroups);
  for (auto& group : request.groups) {
    if (!in.get(group)) return std::nullopt;
  }
  for (auto& limit : request.limits) {
    std::uint64_t value = 0;
    if (!in.get(value)) return std::nullopt;
    if (value != kUnset) limit = value;
  }
  if (!in.get_string(request.path) || request.path.empty()) return std::nullopt;
  request.argv.resize(header.argc);
  for (auto& arg : request.argv) {
    if (!in.get_string(arg)) return std::nullopt;
  }
  request.env.resize(header.envc);
  for (auto& variable : request.env) {
    if (!in.get_string(variable)) return std::nullopt;
  }
  if (!in.done()) return std::nullopt;
  return request;
}

}  // namespace salam::daemon::exec
