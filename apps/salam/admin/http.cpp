#include "http.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

namespace salam::daemon::http {

namespace {

bool is_token_char(char c) noexcept {
  if (std::isalnum(static_cast<unsigned char>(c)) != 0) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view text) noexcept {
  return !text.empty() && std::all_of(text.begin(), text.end(), is_token_char);
}

// Visible ASCII: what a request target may hold.
bool is_target(std::string_view text) noexcept {
  return !text.empty() && text.front() == '/' &&
         std::all_of(text.begin(), text.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

bool equals_ignoring_case(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Whether a comma-separated header value lists `option` (case-insensitive).
bool lists(std::string_view value, std::string_view option) noexcept {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
      item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t'))
      item.remove_suffix(1);
    if (equals_ignoring_case(item, option)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

Parsed refuse(int code, std::string_view reason) noexcept {
  Parsed parsed;
  parsed.status = Parsed::Status::refused;
  parsed.code = code;
  parsed.reason = reason;
  return parsed;
}

// Optional whitespace around a field value.
std::string_view trim(std::string_view text) noexcept {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}

}  // namespace

Parsed parse_request(std::string_view input) noexcept {
  const std::size_t end = input.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (input.size() >= kMaxRequestBytes) return refuse(431, "the request's head is too large");
    // A bare LF, or a NUL, will never become a valid request: say so now.
    for (std::size_t i = 0; i < input.size(); ++i) {
      if (input[i] == '\0') return refuse(400, "a NUL byte in the request");
      if (input[i] == '\n' && (i == 0 || input[i - 1] != '\r')) {
        return refuse(400, "lines must end in CRLF");
      }
    }
    return {};
  }
  if (end + 4 > kMaxRequestBytes) return refuse(431, "the request's head is too large");
  std::string_view head = input.substr(0, end + 2);  // each line with its CRLF

  const std::size_t line_end = head.find("\r\n");
  const std::string_view line = head.substr(0, line_end);
  head.remove_prefix(line_end + 2);
  const std::size_t first = line.find(' ');
  const std::size_t second = first == std::string_view::npos ? first : line.find(' ', first + 1);
  if (second == std::string_view::npos || line.find(' ', second + 1) != std::string_view::npos) {
    return refuse(400, "a malformed request line");
  }
  Parsed parsed;
  Request& request = parsed.request;
  request.method = line.substr(0, first);
  const std::string_view target = line.substr(first + 1, second - first - 1);
  const std::string_view version = line.substr(second + 1);
  if (!is_token(request.method)) return refuse(400, "a malformed method");
  if (!is_target(target)) return refuse(400, "a malformed request target");
  if (version.size() != 8 || !version.starts_with("HTTP/1.") || version[7] < '0' ||
      version[7] > '9') {
    if (version.starts_with("HTTP/")) return refuse(505, "only HTTP/1.x is served");
    return refuse(400, "a malformed HTTP version");
  }
  const bool http10 = version == "HTTP/1.0";
  request.keep_alive = !http10;
  request.path = target.substr(0, target.find('?'));

  std::size_t headers = 0;
  bool host = false;
  while (!head.empty()) {
    const std::size_t next = head.find("\r\n");
    const std::string_view field = head.substr(0, next);
    head.remove_prefix(next + 2);
    if (++headers > kMaxHeaders) return refuse(431, "too many header fields");
    if (field.find('\n') != std::string_view::npos || field.find('\r') != std::string_view::npos ||
        field.find('\0') != std::string_view::npos) {
      return refuse(400, "a control character in a header field");
    }
    const std::size_t colon = field.find(':');
    if (colon == std::string_view::npos) return refuse(400, "a header field without a colon");
    const std::string_view name = field.substr(0, colon);
    if (!is_token(name)) return refuse(400, "a malformed header field name");
    const std::string_view value = trim(field.substr(colon + 1));
    if (equals_ignoring_case(name, "host")) {
      if (host) return refuse(400, "more than one Host header");
      host = true;
    } else if (equals_ignoring_case(name, "content-length")) {
      if (value != "0") return refuse(400, "a request body is not accepted");
    } else if (equals_ignoring_case(name, "transfer-encoding")) {
      return refuse(400, "a request body is not accepted");
    } else if (equals_ignoring_case(name, "connection")) {
      if (lists(value, "close")) request.keep_alive = false;
      if (http10 && lists(value, "keep-alive")) request.keep_alive = true;
    } else if (equals_ignoring_case(name, "accept")) {
      request.accept = value;
    }
  }
  if (!http10 && !host) return refuse(400, "HTTP/1.1 requires a Host header");
  if (request.method != "GET" && request.method != "HEAD") {
    return refuse(405, "only GET and HEAD are served");
  }
  request.head = request.method == "HEAD";
  parsed.status = Parsed::Status::complete;
  parsed.length = end + 4;
  return parsed;
}

std::string_view status_text(int code) noexcept {
  switch (code) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string response(int code, std::string_view content_type, std::string_view body,
                     const Request& request, std::string_view extra_headers) {
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n"
      "X-Content-Type-Options: nosniff\r\n{}{}\r\n",
      code, status_text(code), content_type, body.size(), extra_headers,
      request.keep_alive ? "" : "Connection: close\r\n");
  if (!request.head) out += body;
  return out;
}

std::string error_response(int code, std::string_view reason) {
  Request request;
  request.keep_alive = false;
  const std::string body = fmt::format("{} {}: {}\n", code, status_text(code), reason);
  return response(code, "text/plain; charset=utf-8", body, request,
                  code == 405 ? "Allow: GET, HEAD\r\n" : "");
}

}  // namespace salam::daemon::http
