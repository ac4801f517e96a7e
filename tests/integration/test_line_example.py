"""examples/line_server: a line protocol with a 1024-byte cap, on both backends.

Starts the real example on a free port (its argv[1]) and talks to it with
plain sockets: commands, pipelined commands, a command sent byte by byte,
lines at and over the cap, and 200 clients at once.

Usage: test_line_example.py PATH/TO/line_server [unittest options]
"""
import socket
import sys
import time
import unittest

import harness

BINARY = None
CAP = 1024


def run_server(backend):
    port = harness.free_port()
    server = harness.Server([BINARY, str(port)], env={"SALAM_BACKEND": backend})
    return server, harness.host_port(server.addresses[0])


def connect(address, timeout=10):
    s = socket.create_connection(address, timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class Lines:
    """Reads a socket line by line; every read bounded by `timeout`."""

    def __init__(self, s, timeout=10):
        self.socket = s
        self.timeout = timeout
        self.buffer = b""

    def read_line(self):
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line within {self.timeout}s (have {self.buffer!r})")
            self.socket.settimeout(left)
            chunk = self.socket.recv(4096)
            if not chunk:
                raise AssertionError(f"end of file before a line (have {self.buffer!r})")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def read_to_eof(self, limit=1 << 20):
        deadline = time.monotonic() + self.timeout
        while len(self.buffer) <= limit:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no end of file within {self.timeout}s")
            self.socket.settimeout(left)
            chunk = self.socket.recv(65536)
            if not chunk:
                data, self.buffer = self.buffer, b""
                return data
            self.buffer += chunk
        raise AssertionError(f"more than {limit} bytes before end of file")


class LineExample(unittest.TestCase):
    def on_each_backend(self, body):
        """Runs body(server, address) against a server on each backend, then
        applies the gate: descriptors back, clean exit, no error logged."""
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                server, address = run_server(backend)
                with server:
                    self.assertIn(f", {backend})", server.log())
                    body(server, address)
                    server.assert_fds_return()
                    status, log = server.close()
                    self.assertEqual(status, 0, log)

    def test_commands(self):
        def body(server, address):
            with connect(address) as s:
                lines = Lines(s)
                for command, reply in ((b"PING", b"PONG"), (b"ECHO hello world", b"hello world"),
                                       (b"ECHO ", b""), (b"ECHO  two  spaces ", b" two  spaces "),
                                       (b"ping", b"ERR unknown command"),
                                       (b"", b"ERR unknown command"), (b"PING", b"PONG")):
                    s.sendall(command + b"\n")
                    self.assertEqual(lines.read_line(), reply, command)
                s.sendall(b"QUIT\n")
                self.assertEqual(lines.read_line(), b"BYE")
                self.assertEqual(lines.read_to_eof(), b"", "the server closes after BYE")

        self.on_each_backend(body)

    def test_pipelined_commands_in_one_send(self):
        def body(server, address):
            with connect(address) as s:
                commands = b"".join(b"ECHO %d\n" % i for i in range(100))
                s.sendall(b"PING\n" + commands + b"PING\nQUIT\nPING\n")
                expected = b"PONG\n" + b"".join(b"%d\n" % i for i in range(100)) + b"PONG\nBYE\n"
                self.assertEqual(Lines(s).read_to_eof(), expected,
                                 "every command answered in order, none after QUIT")

        self.on_each_backend(body)

    def test_a_command_sent_byte_by_byte(self):
        def body(server, address):
            with connect(address) as s:
                lines = Lines(s)
                for command, reply in ((b"ECHO split up\n", b"split up"), (b"PING\n", b"PONG")):
                    for i in range(len(command)):
                        s.sendall(command[i:i + 1])
                        time.sleep(0.005)  # so that the bytes arrive one by one
                    self.assertEqual(lines.read_line(), reply)
                s.sendall(b"QUIT\n")
                self.assertEqual(lines.read_line(), b"BYE")

        self.on_each_backend(body)

    def test_a_line_of_the_cap_is_served_and_one_over_it_refused(self):
        def body(server, address):
            with connect(address) as s:
                lines = Lines(s)
                text = b"y" * (CAP - len(b"ECHO "))
                s.sendall(b"ECHO " + text + b"\n")  # exactly 1024 bytes before the newline
                self.assertEqual(lines.read_line(), text)
                s.sendall(b"ECHO " + text + b"z\n")  # 1025
                self.assertEqual(lines.read_line(), b"ERR line too long")
                self.assertEqual(lines.read_to_eof(), b"")

        self.on_each_backend(body)

    def test_an_over_long_line_is_refused_and_the_server_goes_on(self):
        def body(server, address):
            with connect(address) as s:
                # No newline at all. 50 kB: under what the server's lingering
                # close reads and discards (64 KiB) before it gives up and
                # resets, so the refusal is sure to arrive.
                s.sendall(b"x" * 50_000)
                self.assertEqual(Lines(s).read_to_eof(), b"ERR line too long\n")
            # The refusal ended one connection; the next client is served.
            with connect(address) as s:
                s.sendall(b"PING\nQUIT\n")
                self.assertEqual(Lines(s).read_to_eof(), b"PONG\nBYE\n")

        self.on_each_backend(body)

    def test_serves_200_concurrent_clients(self):
        harness.raise_fd_limit()

        def body(server, address):
            host, port = address
            replies = harness.concurrent_exchanges(host, port, 200,
                                                   message=b"PING\nECHO concurrent\nQUIT\n")
            wrong = [r for r in replies if r != b"PONG\nconcurrent\nBYE\n"]
            self.assertEqual(wrong, [], f"{len(wrong)} of 200 clients failed (first: "
                                        f"{wrong[0] if wrong else None!r})")

        self.on_each_backend(body)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
