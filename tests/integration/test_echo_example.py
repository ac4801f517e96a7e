"""examples/echo_server: echo with an idle timeout, on both backends.

Starts the real example on a free port (its argv[1]) with a 1 s idle
timeout (argv[2]), and talks to it with plain sockets.

Usage: test_echo_example.py PATH/TO/echo_server [unittest options]
"""
import asyncio
import socket
import sys
import threading
import time
import unittest

import harness

BINARY = None
IDLE_SECONDS = 1


def run_server(backend):
    port = harness.free_port()
    server = harness.Server([BINARY, str(port), str(IDLE_SECONDS)], env={"SALAM_BACKEND": backend})
    return server, harness.host_port(server.addresses[0])


def connect(address, timeout=10):
    s = socket.create_connection(address, timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(s, count, timeout=10):
    deadline = time.monotonic() + timeout
    data = b""
    while len(data) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{len(data)} of {count} bytes within {timeout}s")
        s.settimeout(left)
        chunk = s.recv(count - len(data))
        if not chunk:
            raise AssertionError(f"end of file after {len(data)} of {count} bytes")
        data += chunk
    return data


def read_to_eof(s, timeout=10, limit=1 << 20):
    """Everything until end of file; at most `limit` bytes and `timeout` seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    while len(data) <= limit:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no end of file within {timeout}s ({len(data)} bytes read)")
        s.settimeout(left)
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"more than {limit} bytes before end of file")


async def echo_once(host, port, message, timeout):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(message)
    writer.write_eof()
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout)
    writer.close()
    await writer.wait_closed()
    return data


def concurrent_echoes(host, port, messages, timeout=60):
    async def run():
        tasks = [echo_once(host, port, m, timeout) for m in messages]
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout)

    return asyncio.run(run())


class EchoExample(unittest.TestCase):
    def close_cleanly(self, server):
        server.assert_fds_return()
        status, log = server.close()
        self.assertEqual(status, 0, log)

    def test_echoes_several_messages_then_closes_after_the_client(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                server, address = run_server(backend)
                with server:
                    self.assertIn(f", {backend})", server.log())
                    with connect(address) as s:
                        for size in (1, 5, 100, 1500, 65536, 300_000):
                            message = bytes(i * 7 % 251 for i in range(size))
                            # Sent from a thread: a message larger than the
                            # socket buffers is echoed while it is still sent.
                            sender = threading.Thread(target=s.sendall, args=(message,))
                            sender.start()
                            echoed = recv_exactly(s, size)
                            sender.join(10)
                            self.assertEqual(echoed, message, f"{size} bytes")
                        s.shutdown(socket.SHUT_WR)
                        started = time.monotonic()
                        self.assertEqual(read_to_eof(s), b"")
                        self.assertLess(time.monotonic() - started, 0.5,
                                        "the server closed at the client's end, not at its timeout")
                    self.close_cleanly(server)

    def test_closes_a_client_idle_for_the_timeout(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                server, address = run_server(backend)
                with server:
                    with connect(address) as s:
                        s.sendall(b"hi")
                        self.assertEqual(recv_exactly(s, 2), b"hi")
                        started = time.monotonic()
                        self.assertEqual(read_to_eof(s, timeout=10), b"")
                        idle = time.monotonic() - started
                        client_port = s.getsockname()[1]
                    # Tolerance: the timeout is 1 s, counted by the server from
                    # the start of its next read, a little after our recv saw
                    # the echo: not much under 1 s (0.5 s leaves room for clock
                    # granularity), and late by up to 5 s on a loaded machine.
                    self.assertGreaterEqual(idle, 0.5)
                    self.assertLessEqual(idle, 5.0)
                    server.wait_for_log(rf" info client 127\.0\.0\.1:{client_port} idle for 1 s: "
                                        r"closing$")
                    self.close_cleanly(server)

    def test_closes_a_client_that_never_speaks(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                server, address = run_server(backend)
                with server:
                    with connect(address) as s:
                        started = time.monotonic()
                        self.assertEqual(read_to_eof(s, timeout=10), b"")
                        idle = time.monotonic() - started
                    # Tolerance as above; here the wait starts at our connect.
                    self.assertGreaterEqual(idle, 0.5)
                    self.assertLessEqual(idle, 5.0)
                    self.close_cleanly(server)

    def test_a_client_that_keeps_talking_stays_open(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                server, address = run_server(backend)
                with server:
                    with connect(address) as s:
                        # 6 messages 0.4 s apart: 2.4 s in all, over twice the
                        # timeout, which counts from the last message only.
                        for i in range(6):
                            message = f"message {i}\n".encode()
                            s.sendall(message)
                            self.assertEqual(recv_exactly(s, len(message)), message)
                            time.sleep(0.4)
                        s.shutdown(socket.SHUT_WR)
                        self.assertEqual(read_to_eof(s), b"")
                    self.assertNotIn(" idle for ", server.log())
                    self.close_cleanly(server)

    def test_serves_200_concurrent_clients(self):
        harness.raise_fd_limit()
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                server, (host, port) = run_server(backend)
                with server:
                    messages = [f"client {i}: {'x' * (i * 37 % 3000)}".encode() for i in range(200)]
                    replies = concurrent_echoes(host, port, messages)
                    wrong = [i for i, (m, r) in enumerate(zip(messages, replies)) if m != r]
                    self.assertEqual(wrong, [], f"{len(wrong)} of 200 clients got a wrong echo "
                                                f"(first: {replies[wrong[0]] if wrong else None!r})")
                    self.close_cleanly(server)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
