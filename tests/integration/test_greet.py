"""salam's default service: the tutorial's greeting server, byte for byte,
made safe for many clients. Runs on both backends."""
import socket
import sys
import threading
import time
import unittest

import harness

BINARY = None


def salam(*args, backend="io_uring", **kwargs):
    return harness.Server([BINARY, "--backend", backend, *args], **kwargs)



class Greet(unittest.TestCase):
    def test_no_arguments_is_the_tutorial_server(self):
        # Exactly the tutorial's client: socket, connect, sendall, recv, close.
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), harness.Server(
                    [BINARY], env={"SALAM_BACKEND": backend}) as server:
                self.assertEqual(server.addresses, ["127.0.0.1:8888"])
                reply, client_port = harness.tutorial_client("127.0.0.1", 8888)
                self.assertEqual(reply, b"Hello, client!")
                server.wait_for_log(rf" info client 127\.0\.0\.1:{client_port} connected$")
                server.wait_for_log(rf"client 127\.0\.0\.1:{client_port} closed: done, 14 bytes in, "
                                    r"14 bytes out")
                self.assertEqual(server.close()[0], 0)

    def test_nc_and_socat_are_answered(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), salam("--listen", "127.0.0.1:0",
                                                      backend=backend) as server:
                host, port = harness.host_port(server.addresses[0])
                nc = harness.run(["nc", "-N", host, str(port)], input=b"hello\n",
                                 capture_output=True, timeout=10)
                self.assertEqual(nc.stdout, b"Hello, client!")
                socat = harness.run(["socat", "-t5", "-", f"TCP:{host}:{port}"],
                                    input=b"hello\n", capture_output=True, timeout=10)
                self.assertEqual(socat.stdout, b"Hello, client!")
                self.assertEqual(server.close()[0], 0)

    def test_ipv6_and_dual_stack(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), salam("--listen", "[::1]:0", "--listen", "[::]:0",
                                                      backend=backend) as server:
                v6_only, dual = server.addresses
                self.assertTrue(v6_only.startswith("[::1]:"))
                _, port = harness.host_port(v6_only)
                self.assertEqual(harness.exchange("::1", port, family=socket.AF_INET6),
                                 b"Hello, client!")
                _, dual_port = harness.host_port(dual)
                self.assertEqual(harness.exchange("::1", dual_port, family=socket.AF_INET6),
                                 b"Hello, client!")
                self.assertEqual(harness.exchange("127.0.0.1", dual_port), b"Hello, client!")
                # IPv4 clients of a dual-stack listener are logged as IPv4.
                server.wait_for_log(r"client 127\.0\.0\.1:\d+ connected")
                server.wait_for_log(r"client \[::1\]:\d+ connected")
                self.assertEqual(server.close()[0], 0)

    def test_a_client_that_sends_nothing_and_closes_is_answered_quietly(self):
        # The tutorial's server: recv returns b"", the reply is attempted,
        # the connection closed. No error is logged for it.
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), salam("--listen", "127.0.0.1:0",
                                                      backend=backend) as server:
                host, port = harness.host_port(server.addresses[0])
                for _ in range(20):
                    s = socket.create_connection((host, port), timeout=5)
                    s.shutdown(socket.SHUT_WR)
                    s.close()
                server.wait_for_count(r"closed: done, 0 bytes in", 20)

                self.assertEqual(harness.exchange(host, port), b"Hello, client!")
                server.close()  # fails on any error-level line

    def test_silent_clients_are_closed_at_the_read_timeout_and_delay_nobody(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), salam("--listen", "127.0.0.1:0", "--threads", "1",
                                                      "--read-timeout", "1s",
                                                      backend=backend) as server:
                host, port = harness.host_port(server.addresses[0])
                silent = [socket.create_connection((host, port), timeout=10) for _ in range(50)]
                started = time.monotonic()
                for _ in range(20):
                    t0 = time.monotonic()
                    self.assertEqual(harness.exchange(host, port), b"Hello, client!")
                    # Served at once, never after the silent clients' 1 s
                    # (tolerance for a loaded machine: 0.9 s).
                    self.assertLess(time.monotonic() - t0, 0.9)
                for s in silent:
                    self.assertEqual(s.recv(100), b"", "a silent client gets no reply, just EOF")
                    s.close()
                waited = time.monotonic() - started
                self.assertGreaterEqual(waited, 0.9)
                self.assertLess(waited, 5)
                server.wait_for_count(r"closed: timeout_first_byte, 0 bytes in, 0 bytes out", 50)

                self.assertEqual(server.close()[0], 0)

    def test_two_thousand_concurrent_clients(self):
        harness.raise_fd_limit()
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), salam("--listen", "127.0.0.1:0", "--quiet",
                                                      backend=backend) as server:
                host, port = harness.host_port(server.addresses[0])
                rss = []
                for _ in range(3):
                    replies = harness.concurrent_exchanges(host, port, 2000)
                    failures = [r for r in replies if r != b"Hello, client!"]
                    self.assertEqual(failures, [], f"{len(failures)} of 2000 failed: {failures[:3]}")
                    server.assert_fds_return()
                    rss.append(server.rss_kib())
                # The first round warms the pools and the allocator; after it
                # memory stays put. A leak of even 1 KiB a connection would add
                # 2 MiB a round (tolerance: 2 MiB over two rounds).
                if not harness.SANITIZED:
                    self.assertLess(rss[2] - rss[0], 2048, f"RSS per round, KiB: {rss}")
                self.assertEqual(server.close()[0], 0)

    def test_connections_past_max_connections_are_closed_at_once(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), salam("--listen", "127.0.0.1:0", "--max-connections",
                                                      "5", "--read-timeout", "1m",
                                                      backend=backend) as server:
                host, port = harness.host_port(server.addresses[0])
                held = [socket.create_connection((host, port), timeout=10) for _ in range(5)]
                server.wait_for_count(r" connected$", 5)
                for _ in range(3):
                    # Refused before a byte is read or written: end of file,
                    # or a reset if the request had already arrived.
                    try:
                        self.assertEqual(harness.exchange(host, port), b"")
                    except ConnectionResetError:
                        pass

                server.wait_for_count(r"closed: limit_conns, 0 bytes in, 0 bytes out", 3)
                for s in held:
                    s.sendall(b"hi")
                    self.assertEqual(s.recv(100), b"Hello, client!")
                    s.close()
                # Places free up as connections end.
                deadline = time.monotonic() + 5
                while harness.exchange(host, port) != b"Hello, client!":
                    self.assertLess(time.monotonic(), deadline)
                self.assertEqual(server.close()[0], 0)

    def test_refused_clients_that_sent_data_are_closed_at_once(self):
        # No lingering for a connection the limits turned away, even with
        # its request unread: lingering would hold descriptors that no limit
        # counts (for up to 5 s each) exactly when the limits shed load.
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), salam("--listen", "127.0.0.1:0", "--max-connections",
                                                      "1", "--read-timeout", "1m",
                                                      backend=backend) as server:
                host, port = harness.host_port(server.addresses[0])
                held = socket.create_connection((host, port), timeout=10)
                server.wait_for_count(r" connected$", 1)
                baseline = server.fd_count()
                refused = []
                for _ in range(20):
                    s = socket.create_connection((host, port), timeout=10)
                    s.sendall(b"a request the server will not read")
                    refused.append(s)  # and never closed by the client
                server.wait_for_count(r"closed: limit_conns", 20)
                # Tolerance: 1 s for the closes of a busy machine; lingering
                # would keep them open for 5 s.
                deadline = time.monotonic() + 1
                while server.fd_count() > baseline and time.monotonic() < deadline:
                    time.sleep(0.02)
                self.assertLessEqual(server.fd_count(), baseline, "refused sockets still open")
                for s in refused:
                    s.close()
                held.close()
                self.assertEqual(server.close()[0], 0)

    def test_unix_socket_listener(self):
        import os
        import tempfile
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "salam.sock")
            for backend in harness.BACKENDS:
                with self.subTest(backend=backend), salam("--listen", f"unix:{path}",
                                                          backend=backend) as server:
                    self.assertEqual(server.addresses, [f"unix:{path}"])
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                        s.settimeout(10)
                        s.connect(path)
                        s.sendall(b"hi")
                        self.assertEqual(s.recv(100), b"Hello, client!")
                    server.wait_for_log(rf"client unix:{path} connected")
                    self.assertEqual(server.close()[0], 0)
                    self.assertFalse(os.path.exists(path), "the socket file is removed at exit")

    def test_article_backlog_and_one_thread_can_be_reproduced(self):

        with salam("--listen", "127.0.0.1:0", "--backlog", "5", "--threads", "1") as server:
            host, port = harness.host_port(server.addresses[0])
            self.assertIn("(1 shard,", server.log())
            self.assertEqual(harness.exchange(host, port), b"Hello, client!")
            self.assertEqual(server.close()[0], 0)

    def test_reply_survives_a_client_that_sent_more_than_was_read(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), salam("--listen", "127.0.0.1:0",
                                                      backend=backend) as server:
                host, port = harness.host_port(server.addresses[0])
                for _ in range(10):
                    with socket.create_connection((host, port), timeout=10) as s:
                        s.sendall(b"x" * 60000)  # far more than the 1024 bytes read
                        time.sleep(0.02)
                        data = b""
                        while True:
                            chunk = s.recv(4096)
                            if not chunk:
                                break
                            data += chunk
                    self.assertEqual(data, b"Hello, client!")
                self.assertEqual(server.close()[0], 0)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
