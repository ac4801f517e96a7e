// A strict, bounded HTTP/1.1 request parser and response writer for the
// admin endpoint: GET and HEAD without a body, nothing more. Sans-IO: the
// caller reads bytes and hands them over; a request either parses whole,
// needs more bytes, or is refused with a status to answer.
//
// Strict where RFC 9112 allows a choice: lines end in CRLF; no obsolete
// line folding; header names are tokens; a Host header is required for
// HTTP/1.1 and may appear once; no request body (Content-Length other than
// 0, or any Transfer-Encoding, is refused).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace salam::daemon::http {

inline constexpr std::size_t kMaxRequestBytes = 8 * 1024;  // request line and headers
inline constexpr std::size_t kMaxHeaders = 64;

struct Request {
  std::string_view method;
  std::string_view path;    // the target up to any '?'
  std::string_view accept;  // the Accept header, if any
  bool head = false;        // a HEAD: answer without the body
  bool keep_alive = true;
};

struct Parsed {
  enum class Status { complete, incomplete, refused };
  Status status = Status::incomplete;
  Request request;          // complete: valid until the input changes
  std::size_t length = 0;   // complete: bytes the request took
  int code = 0;             // refused: the status to answer (400, 405, 413, 431, 501, 505)
  std::string_view reason;  // refused: why, for the response body (a static string)
};

Parsed parse_request(std::string_view input) noexcept;

// A whole response. `body` is left out for HEAD, its length still given.
std::string response(int code, std::string_view content_type, std::string_view body,
                     const Request& request, std::string_view extra_headers = {});
// A response to a refused or failed request: plain text, connection closed.
std::string error_response(int code, std::string_view reason);

std::string_view status_text(int code) noexcept;

}  // namespace salam::daemon::http
