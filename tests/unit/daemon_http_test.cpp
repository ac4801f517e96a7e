// The admin endpoint's HTTP request parser: what it takes, what it
// refuses, and with which status.
#include <string>

#include <gtest/gtest.h>

#include "admin/http.hpp"

namespace salam::daemon::http {
namespace {

using Status = Parsed::Status;

TEST(AdminHttp, ParsesAGetWithItsHeaders) {
  const std::string input =
      "GET /metrics?x=1 HTTP/1.1\r\nHost: localhost\r\nAccept: application/openmetrics-text\r\n"
      "User-Agent: test\r\n\r\nGET / HTTP/1.1\r\n";
  const Parsed parsed = parse_request(input);
  ASSERT_EQ(parsed.status, Status::complete);
  EXPECT_EQ(parsed.request.method, "GET");
  EXPECT_EQ(parsed.request.path, "/metrics");
  EXPECT_EQ(parsed.request.accept, "application/openmetrics-text");
  EXPECT_TRUE(parsed.request.keep_alive);
  EXPECT_FALSE(parsed.request.head);
  EXPECT_EQ(input.substr(parsed.length), "GET / HTTP/1.1\r\n");  // the next request is left
}

TEST(AdminHttp, WaitsForTheWholeHeadInAnyPieces) {
  const std::string input = "HEAD /ready HTTP/1.1\r\nHost: x\r\n\r\n";
  for (std::size_t cut = 0; cut < input.size(); ++cut) {
    EXPECT_EQ(parse_request(input.substr(0, cut)).status, Status::incomplete) << cut;
  }
  const Parsed parsed = parse_request(input);
  ASSERT_EQ(parsed.status, Status::complete);
  EXPECT_TRUE(parsed.request.head);
}

TEST(AdminHttp, KeepAliveFollowsTheVersionAndTheConnectionHeader) {
  EXPECT_FALSE(
      parse_request("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").request.keep_alive);
  EXPECT_FALSE(parse_request("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, Close\r\n\r\n")
                   .request.keep_alive);
  EXPECT_FALSE(parse_request("GET / HTTP/1.0\r\n\r\n").request.keep_alive);
  EXPECT_TRUE(parse_request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").request.keep_alive);
}

TEST(AdminHttp, RefusesWhatItDoesNotServeWithTheRightStatus) {
  struct Case {
    std::string input;
    int code;
  };
  const Case cases[] = {
      {"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 405},
      {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
      {"GET / HTTP/1.1\r\n\r\n", 400},                        // no Host
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},  // two
      {"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400},  // obsolete folding
      {"GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400},
      {"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400},  // absolute form
      {"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400},         // two spaces
      {"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400},
      {"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"GET / HTTP/1.1\nHost: x\n\n", 400},                      // bare LF, seen before the end
      {std::string("GET / HTTP/1.1\r\nHost: \0\r\n", 25), 400},  // a NUL
  };
  for (const auto& c : cases) {
    const Parsed parsed = parse_request(c.input);
    EXPECT_EQ(parsed.status, Status::refused) << c.input;
    EXPECT_EQ(parsed.code, c.code) << c.input;
    EXPECT_FALSE(parsed.reason.empty());
  }
}

TEST(AdminHttp, BoundsTheHeadAndTheHeaderCount) {
  std::string huge = "GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(kMaxRequestBytes, 'a');
  EXPECT_EQ(parse_request(huge).code, 431);  // refused before its end arrives
  std::string many = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (std::size_t i = 0; i < kMaxHeaders; ++i)
    many += "X: y\r\n";
  EXPECT_EQ(parse_request(many + "\r\n").code, 431);
}

TEST(AdminHttp, AResponseSaysItsLengthAndLeavesTheBodyOutForHead) {
  Request request;
  request.head = true;
  const std::string head = response(200, "text/plain", "hello", request);
  EXPECT_NE(head.find("Content-Length: 5\r\n"), std::string::npos);
  EXPECT_TRUE(head.ends_with("\r\n\r\n"));
  request.head = false;
  request.keep_alive = false;
  const std::string get = response(200, "text/plain", "hello", request);
  EXPECT_NE(get.find("Connection: close\r\n"), std::string::npos);
  EXPECT_TRUE(get.ends_with("\r\n\r\nhello"));
  EXPECT_NE(error_response(405, "no").find("Allow: GET, HEAD\r\n"), std::string::npos);
}

}  // namespace
}  // namespace salam::daemon::http
