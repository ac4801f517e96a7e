// A line protocol with a length cap, on BufferedReader and BufferedWriter.
// Each line is a command; lines end in "\n":
//   PING       -> PONG
//   ECHO text  -> text
//   QUIT       -> BYE, and the server closes
//   a line over 1024 bytes -> ERR line too long, and the server closes
// Commands pipelined in one packet are read from one read. Listens on
// 127.0.0.1:8890; a port may be given.
//
// Try it:  build/release/examples/line_server [port]
//          nc 127.0.0.1 8890      (then type PING, ECHO hello, QUIT)
#include <string>

#include <salam/salam.hpp>

using namespace std::chrono_literals;

salam::Task<> serve(salam::Connection client) {
  salam::BufferedReader reader(client);
  salam::BufferedWriter writer(client);
  for (bool open = true; open;) {
    auto line = co_await reader.read_until("\n", 1024, 60s);
    if (!line) {  // too long, a minute idle, or the client left
      if (line.error() == std::errc::message_size) writer.append("ERR line too long\n");
      open = false;
    } else if (*line == "PING") {
      writer.append("PONG\n");
    } else if (line->starts_with("ECHO ")) {
      writer.append(line->substr(5));
      writer.append("\n");  // one send with the text: the writer gathers appends
    } else if (*line == "QUIT") {
      writer.append("BYE\n");
      open = false;
    } else {
      writer.append("ERR unknown command\n");
    }
    if (co_await writer.flush(10s)) break;
  }
}

int main(int argc, char** argv) try {
  salam::Server server;
  server.listen({.address = "127.0.0.1:" + std::string(argc > 1 ? argv[1] : "8890")}, serve);
  return salam::run_until_signal(server);
} catch (const std::exception& e) {
  salam::log::critical("{}", e.what());  // e.g. the port is taken
  return 1;
}
