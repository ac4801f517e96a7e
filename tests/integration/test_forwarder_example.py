"""examples/forwarder: a TCP proxy with half-close both ways, on both
backends, in front of a real upstream (a Python server on loopback)."""
import socket
import sys
import threading
import unittest

import harness

BINARY = None


class Upstream:
    """Reads each client to end of file, then answers with what it got,
    reversed, and closes: a reply only a half-close lets through."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(client,), daemon=True).start()

    @staticmethod
    def answer(client):
        with client:
            client.settimeout(10)
            received = b""
            while chunk := client.recv(65536):
                received += chunk
            client.sendall(received[::-1])

    def close(self):
        self.listener.close()


def start(backend, upstream):
    port = harness.free_port()
    return harness.Server([BINARY, f"127.0.0.1:{port}", f"127.0.0.1:{upstream.port}"],
                          env={"SALAM_BACKEND": backend}), port


class ForwarderExample(unittest.TestCase):
    def setUp(self):
        self.upstream = Upstream()

    def tearDown(self):
        self.upstream.close()

    def test_half_close_passes_through_both_ways(self):
        for backend in harness.BACKENDS:
            server, port = start(backend, self.upstream)
            with self.subTest(backend=backend), server:
                message = bytes(range(256)) * 4000  # 1 MB, more than the socket buffers
                reply = harness.exchange("127.0.0.1", port, message, half_close=True, timeout=20)
                self.assertEqual(reply, message[::-1])
                server.assert_fds_return()
                status, _ = server.close()
                self.assertEqual(status, 0)

    def test_many_clients_at_once(self):
        harness.raise_fd_limit()
        for backend in harness.BACKENDS:
            server, port = start(backend, self.upstream)
            with self.subTest(backend=backend), server:
                results = []

                def one(index):
                    message = f"client {index}".encode()
                    results.append(harness.exchange("127.0.0.1", port, message, half_close=True)
                                   == message[::-1])

                threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(30)
                self.assertEqual(results.count(True), 100)
                server.assert_fds_return()
                server.close()

    def test_an_unreachable_upstream_closes_the_client(self):
        dead = harness.free_port()  # nothing listens there
        for backend in harness.BACKENDS:
            port = harness.free_port()
            with self.subTest(backend=backend), harness.Server(
                    [BINARY, f"127.0.0.1:{port}", f"127.0.0.1:{dead}"],
                    env={"SALAM_BACKEND": backend}) as server:
                self.assertEqual(harness.exchange("127.0.0.1", port, b"hi"), b"")
                server.close()


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
