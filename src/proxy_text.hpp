// The fields of a PROXY v1 line, read a character at a time: feed() says
// false as soon as no valid field can continue the characters so far, and
// finish(), at the field's end, whether they make a whole one. This is what
// lets the parser refuse a line at its first bad byte, and wait while the
// line so far could still be valid.
//
// Private to src/proxy_protocol.cpp. Each scanner is a few dozen bytes,
// allocates nothing and throws nothing.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

namespace salam::proxy::detail {

// An IPv4 address as the specification writes it: four decimal numbers
// 0..255, no leading zeros (they would read as octal to some parsers).
class Ipv4Text {
 public:
  bool feed(char c) noexcept {
    if (c == '.') {
      if (digits_ == 0 || octet_ == 3) return false;
      bytes_[octet_++] = static_cast<std::uint8_t>(value_);
      digits_ = 0;
      value_ = 0;
      return true;
    }
    if (c < '0' || c > '9') return false;
    if (digits_ > 0 && value_ == 0) return false;
    value_ = value_ * 10 + static_cast<unsigned>(c - '0');
    ++digits_;
    return value_ <= 255;
  }
  bool finish() noexcept {
    if (digits_ == 0 || octet_ != 3) return false;
    bytes_[3] = static_cast<std::uint8_t>(value_);
    return true;
  }
  const std::uint8_t* bytes() const noexcept { return bytes_.data(); }

 private:
  std::array<std::uint8_t, 4> bytes_{};
  int octet_ = 0;
  int digits_ = 0;
  unsigned value_ = 0;
};

inline int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// An IPv6 address: groups of 1 to 4 hex digits (either case) separated by
// single colons, at most one "::" standing for one or more zero groups, 128
// bits in all. The last 32 bits may be a dotted IPv4 address
// (::ffff:192.0.2.1): that is how inet_ntop, and so most senders, write
// IPv4-mapped addresses. No zone ("%eth0"): a zone means nothing to the
// receiver.
class Ipv6Text {
 public:
  bool feed(char c) noexcept {
    if (in_ipv4_tail_) return ipv4_tail_.feed(c);
    if (c == ':') return feed_colon();
    if (c == '.') return start_ipv4_tail();
    const int digit = hex_digit(c);
    return digit >= 0 && feed_hex(c, digit);
  }
  bool finish() noexcept;
  const std::uint8_t* bytes() const noexcept { return bytes_.data(); }

 private:
  // Groups the address may still hold: 8, or 7 once "::" took at least one.
  int group_limit() const noexcept { return gap_ < 0 ? 8 : 7; }
  bool feed_hex(char c, int digit) noexcept;
  bool feed_colon() noexcept;
  bool start_ipv4_tail() noexcept;
  void assemble(int tail_groups) noexcept;

  std::array<std::uint16_t, 8> groups_{};
  int groups_read_ = 0;
  int gap_ = -1;  // index in groups_ where "::" stands
  int digits_ = 0;
  unsigned value_ = 0;
  // The group being read, as text: it may turn out to be an IPv4 tail's
  // first number.
  std::array<char, 4> text_{};
  int colons_ = 0;  // colons just read: 1, or 2 for "::"
  bool leading_colon_ = false;
  bool in_ipv4_tail_ = false;
  Ipv4Text ipv4_tail_;
  std::array<std::uint8_t, 16> bytes_{};
};

inline bool Ipv6Text::feed_hex(char c, int digit) noexcept {
  // A leading colon is only the start of "::".
  if (leading_colon_ || digits_ == 4) return false;
  if (digits_ == 0 && groups_read_ >= group_limit()) return false;
  text_[static_cast<std::size_t>(digits_++)] = c;
  value_ = value_ * 16 + static_cast<unsigned>(digit);
  colons_ = 0;
  return true;
}

inline bool Ipv6Text::feed_colon() noexcept {
  if (digits_ > 0) {
    groups_[static_cast<std::size_t>(groups_read_++)] = static_cast<std::uint16_t>(value_);
    digits_ = 0;
    value_ = 0;
    colons_ = 1;
    // Another group or "::" must follow, and must fit.
    return groups_read_ < group_limit();
  }
  if (colons_ == 1 && gap_ < 0) {
    gap_ = groups_read_;
    colons_ = 2;
    leading_colon_ = false;
    return true;
  }
  if (colons_ == 0 && groups_read_ == 0 && gap_ < 0 && !leading_colon_) {
    leading_colon_ = true;
    colons_ = 1;
    return true;
  }
  return false;  // ":::", a second "::", or ':' after an empty start
}

inline bool Ipv6Text::start_ipv4_tail() noexcept {
  // The tail takes the last two groups, so it ends the address: without
  // "::" exactly six groups come before it.
  if (digits_ == 0) return false;
  if (gap_ < 0 ? groups_read_ != 6 : groups_read_ > 5) return false;
  in_ipv4_tail_ = true;
  for (int i = 0; i < digits_; ++i) {
    if (!ipv4_tail_.feed(text_[static_cast<std::size_t>(i)])) return false;
  }
  return ipv4_tail_.feed('.');
}

inline bool Ipv6Text::finish() noexcept {
  int tail_groups = 0;
  if (in_ipv4_tail_) {
    if (!ipv4_tail_.finish()) return false;
    tail_groups = 2;
  } else if (digits_ > 0) {
    groups_[static_cast<std::size_t>(groups_read_++)] = static_cast<std::uint16_t>(value_);
  } else if (colons_ != 2) {
    return false;  // empty, or ending in a single ':'
  }
  const int total = groups_read_ + tail_groups;
  if (gap_ < 0 ? total != 8 : total > 7) return false;
  assemble(tail_groups);
  return true;
}

inline void Ipv6Text::assemble(int tail_groups) noexcept {
  const int before_gap = gap_ < 0 ? groups_read_ : gap_;
  const int zero_groups = 8 - groups_read_ - tail_groups;
  std::size_t out = 0;
  auto put_group = [&](std::uint16_t group) {
    bytes_[out++] = static_cast<std::uint8_t>(group >> 8);
    bytes_[out++] = static_cast<std::uint8_t>(group & 0xFF);
  };
  for (int i = 0; i < before_gap; ++i)
    put_group(groups_[static_cast<std::size_t>(i)]);
  for (int i = 0; i < zero_groups; ++i)
    put_group(0);
  for (int i = before_gap; i < groups_read_; ++i)
    put_group(groups_[static_cast<std::size_t>(i)]);
  if (tail_groups > 0) std::memcpy(&bytes_[12], ipv4_tail_.bytes(), 4);
}

// A port: 0..65535 in decimal, no leading zeros, no sign.
class PortText {
 public:
  bool feed(char c) noexcept {
    if (c < '0' || c > '9') return false;
    if (digits_ > 0 && value_ == 0) return false;
    value_ = value_ * 10 + static_cast<unsigned>(c - '0');
    ++digits_;
    return value_ <= 65535;
  }
  bool finish() const noexcept { return digits_ > 0; }
  // Network byte order, as the address structures want it.
  std::array<std::uint8_t, 2> bytes() const noexcept {
    return {static_cast<std::uint8_t>(value_ >> 8), static_cast<std::uint8_t>(value_ & 0xFF)};
  }

 private:
  int digits_ = 0;
  unsigned value_ = 0;
};

}  // namespace salam::proxy::detail
