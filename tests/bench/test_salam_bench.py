"""salam-bench against real servers: its counts must add up, a correct
server must show no errors, and a wrong one must show every operation as
the error it is.

Usage: test_salam_bench.py SALAM_BENCH HELLO_SERVER [SALAM]

The greeting server is examples/hello_server (127.0.0.1:8888, on both
backends). Echo, discard, idle and misbehaving servers are small Python
servers in this file, on ephemeral ports. TLS runs against the salam daemon
(SALAM) with --tls-cert, on ephemeral ports, with certificates made by the
openssl command at the start; without SALAM or openssl they are skipped.
Every run is bounded: about a second, or a fixed number of operations, with
a timeout on the process.
"""
import asyncio
import json
import os
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

BENCH = None
HELLO_SERVER = None
SALAM = None
GREETING = b"Hello, client!"


def bench(*args, timeout=60):
    """Runs salam-bench with --json; returns (result, stderr)."""
    done = harness.run([BENCH, "--json", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"salam-bench {' '.join(map(str, args))} exited {done.returncode}:\n"
                             f"{done.stderr}")
    return json.loads(done.stdout), done.stderr


class PythonServer:
    """An asyncio server on 127.0.0.1 and an ephemeral port, in a thread.

    `handler(reader, writer)` is a coroutine serving one connection."""

    def __init__(self, handler):
        self.handler = handler
        self.loop = asyncio.new_event_loop()
        self.connections = 0
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        if not started.wait(10):
            raise AssertionError("the Python test server did not start")

    def _run(self, started):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024))
        self.port = self.server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()
        self.server.close()
        self.loop.run_until_complete(self.server.wait_closed())
        self.loop.close()

    async def _serve(self, reader, writer):
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @property
    def target(self):
        return f"127.0.0.1:{self.port}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class UnreadRequestServer(socketserver.ThreadingTCPServer):
    """Like nginx's `return`: replies and closes without reading the
    request, so the kernel answers the unread request with a reset. (An
    asyncio server would read the request into its buffer on its own.)"""

    daemon_threads = True

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            time.sleep(0.01)  # let the request arrive first
            self.request.sendall(GREETING)

    def shutdown_request(self, request):
        request.close()  # socketserver's own would send FIN first, and no reset

    def __init__(self):
        super().__init__(("127.0.0.1", 0), self.Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def target(self):
        return f"127.0.0.1:{self.server_address[1]}"

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def reversed_echo(reader, writer):
    """Echoes every read back to front: the right length, the wrong bytes."""
    while data := await reader.read(65536):
        writer.write(data[::-1])
        await writer.drain()


async def discard(reader, writer):
    while await reader.read(65536):
        pass


async def wrong_greeting(reader, writer):
    """Reads the message, then answers almost like the article's server."""
    await reader.read(1024)
    writer.write(b"Hello, client?")
    await writer.drain()


async def short_banner(reader, writer):
    """Speaks first, but one byte short."""
    writer.write(GREETING[:-1])
    await writer.drain()


async def hoarding(reader, writer):
    """Idle like `silent`, holding 64 KiB of written memory per connection."""
    hoard = b"x" * 65536
    await reader.read()
    del hoard


async def silent(reader, writer):
    """Accepts and never answers (until the client goes away)."""
    await reader.read()


def assert_consistent(test, result, operations=None):
    errors = result["errors"]
    kinds = ("refused", "reset", "timeout", "wrong_reply", "tls", "other")
    test.assertEqual(errors["total"], sum(errors[kind] for kind in kinds), result)
    test.assertEqual(result["operations"], result["successes"] + errors["total"], result)
    if operations is not None:
        test.assertEqual(result["operations"], operations, result)
    else:
        test.assertGreater(result["operations"], 0, result)
    latency = result["latency_us"]
    if result["successes"] > 0:
        test.assertLessEqual(latency["p50"], latency["p90"])
        test.assertLessEqual(latency["p90"], latency["p99"])
        test.assertLessEqual(latency["p99"], latency["p99_9"])
        test.assertLessEqual(latency["p99_9"], latency["max"])


def assert_clean(test, result, operations=None):
    assert_consistent(test, result, operations)
    test.assertEqual(result["errors"]["total"], 0, result)
    test.assertEqual(result["successes"], result["operations"])


class AgainstHelloServer(unittest.TestCase):
    """The real greeting server, on both backends (client on the same one)."""

    def run_server(self, backend):
        return harness.Server([HELLO_SERVER], env={"SALAM_BACKEND": backend})

    def test_greet_for_a_second(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), self.run_server(backend) as server:
                result, stderr = bench("--duration", "1s", "--concurrency", 16, "--backend", backend,
                                       "--server-pid", server.pid)
                assert_clean(self, result)
                self.assertEqual(result["backend"], backend)
                self.assertEqual(result["bytes_received"], result["successes"] * len(GREETING))
                self.assertGreater(result["server_cpu_s"], 0)
                self.assertGreater(result["server_cpu_us_per_op"], 0)
                self.assertEqual(stderr, "", "no progress line when stderr is not a terminal")
                self.assertEqual(server.log().count(" connected\n"), result["operations"])
                server.assert_fds_return()
                server.close()

    def test_a_fixed_number_of_requests(self):
        with self.run_server("io_uring") as server:
            result, _ = bench("--requests", 777, "--concurrency", 10)
            assert_clean(self, result, operations=777)
            server.close()

    def test_banner_with_half_close(self):
        # hello_server waits for the client's message; a client that sends
        # none but closes its side gets the greeting at once.
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), self.run_server(backend) as server:
                result, _ = bench("--workload", "banner", "--half-close", "--duration", "1s",
                                  "--concurrency", 8, "--backend", backend)
                assert_clean(self, result)
                self.assertEqual(result["bytes_sent"], 0)
                server.close()

    def test_burst(self):
        harness.raise_fd_limit()
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), self.run_server(backend) as server:
                result, _ = bench("--workload", "burst", "--concurrency", 500, "--backend",
                                  backend, "--threads", 2)
                assert_clean(self, result, operations=500)
                # The accept queue (4096) holds the whole burst: no SYN retransmits.
                self.assertEqual(result["over_1s"], 0, result)
                server.close()

    def test_human_summary(self):
        with self.run_server("io_uring") as server:
            done = harness.run([BENCH, "--requests", "100", "--concurrency", "4",
                                "--server-pid", str(server.pid)],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertRegex(done.stdout, r"operations +100 ")
            self.assertRegex(done.stdout, r"errors +0 \(refused 0, reset 0, timeout 0, "
                                          r"wrong_reply 0, other 0\)")
            self.assertRegex(done.stdout, r"latency µs +p50 \d+ +p90 \d+ +p99 \d+ +p99\.9 \d+")
            self.assertRegex(done.stdout, r"server CPU +[\d.]+ µs per operation")
            self.assertEqual(done.stderr, "")
            server.close()


class AgainstWrongServers(unittest.TestCase):
    """Every operation against a misbehaving server is the error it is."""

    def test_wrong_greeting_is_a_wrong_reply(self):
        with PythonServer(wrong_greeting) as server:
            result, _ = bench("--target", server.target, "--duration", "1s", "--concurrency", 4)
            assert_consistent(self, result)
            self.assertEqual(result["successes"], 0, result)
            self.assertEqual(result["errors"]["wrong_reply"], result["operations"], result)

    def test_short_banner_is_a_wrong_reply(self):
        with PythonServer(short_banner) as server:
            result, _ = bench("--target", server.target, "--workload", "banner", "--requests", 200,
                              "--concurrency", 4)
            assert_consistent(self, result, operations=200)
            self.assertEqual(result["errors"]["wrong_reply"], 200, result)

    def test_corrupted_echo_is_a_wrong_reply(self):
        with PythonServer(reversed_echo) as server:
            result, _ = bench("--target", server.target, "--workload", "echo", "--requests", 200,
                              "--concurrency", 4)
            assert_consistent(self, result, operations=200)
            self.assertEqual(result["errors"]["wrong_reply"], 200, result)

    def test_reset_after_the_reply_is_a_reset_and_told_apart(self):
        with UnreadRequestServer() as server:
            result, _ = bench("--target", server.target, "--requests", 100, "--concurrency", 4)
            assert_consistent(self, result, operations=100)
            self.assertEqual(result["errors"]["reset"], 100, result)
            self.assertEqual(result["errors"]["reset_after_reply"], 100, result)

    def test_closed_port_is_refused(self):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        result, _ = bench("--target", f"127.0.0.1:{port}", "--requests", 50, "--concurrency", 5)
        assert_consistent(self, result, operations=50)
        self.assertEqual(result["errors"]["refused"], 50, result)

    def test_silent_server_times_out(self):
        with PythonServer(silent) as server:
            result, _ = bench("--target", server.target, "--requests", 6, "--concurrency", 3,
                              "--timeout", "200ms")
            assert_consistent(self, result, operations=6)
            self.assertEqual(result["errors"]["timeout"], 6, result)
            self.assertLess(result["elapsed_s"], 5)


class StreamsAndIdle(unittest.TestCase):
    """echo, discard and hold against small Python servers."""

    def test_echo_round_trips(self):
        with PythonServer(echo) as server:
            result, _ = bench("--target", server.target, "--workload", "echo", "--requests", 2000,
                              "--concurrency", 4, "--size", 100)
            assert_clean(self, result, operations=2000)
            self.assertEqual(result["bytes_sent"], 2000 * 100)
            self.assertEqual(result["bytes_received"], 2000 * 100)
            self.assertEqual(server.connections, 4, "echo keeps its connections")

    def test_echo_of_payloads_larger_than_socket_buffers(self):
        with PythonServer(echo) as server:
            size = 3 * 1024 * 1024
            result, _ = bench("--target", server.target, "--workload", "echo", "--requests", 6,
                              "--concurrency", 2, "--size", size)
            assert_clean(self, result, operations=6)
            self.assertEqual(result["bytes_received"], 6 * size)

    def test_discard_for_a_second(self):
        with PythonServer(discard) as server:
            result, _ = bench("--target", server.target, "--workload", "discard", "--duration", "1s",
                              "--concurrency", 2)
            assert_clean(self, result)
            self.assertEqual(result["bytes_sent"], result["operations"] * 65536)
            self.assertGreater(result["sent_gbit_per_s"], 0)

    def test_hold_keeps_every_connection(self):
        harness.raise_fd_limit()
        with PythonServer(hoarding) as server:
            # The server is this process: its memory grows by 64 KiB per connection.
            result, _ = bench("--target", server.target, "--workload", "hold", "--duration", "2s",
                              "--concurrency", 300, "--server-pid", os.getpid())
            assert_clean(self, result, operations=300)
            self.assertEqual(result["held"], 300)
            self.assertEqual(result["most_held"], 300)
            # 64 KiB held per connection; the interpreter's own allocations move RSS by a few KiB.
            self.assertGreater(result["server_rss_per_connection_bytes"], 48000, result)
            self.assertLess(result["server_rss_per_connection_bytes"], 100000, result)
            self.assertEqual(server.connections, 300)

    def test_hold_counts_connections_the_server_closes(self):
        with PythonServer(short_banner) as server:  # sends, then closes
            result, _ = bench("--target", server.target, "--workload", "hold", "--duration", "1s",
                              "--concurrency", 20)
            assert_consistent(self, result, operations=20)
            self.assertEqual(result["errors"]["reset"], 20, result)


def make_certificate(directory, name):
    """A self-signed ECDSA P-256 certificate for localhost: NAME.pem (the
    certificate, its own CA) and NAME.full (certificate and key)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key", "-out",
                    f"{name}.pem", "-days", "30", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost"],
                   cwd=directory, check=True, capture_output=True, timeout=30)
    with open(os.path.join(directory, f"{name}.full"), "w") as out:
        for part in (f"{name}.pem", f"{name}.key"):
            with open(os.path.join(directory, part)) as f:
                out.write(f.read())
    return os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.full")


class FreshKeysTlsServer(socketserver.ThreadingTCPServer):
    """Speaks first over TLS, with a new context per connection: every
    connection has ticket keys of its own, so every session a client offers
    is refused (a full handshake), as after a server restart."""

    daemon_threads = True

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.server.certificate)
            try:
                with context.wrap_socket(self.request, server_side=True) as tls:
                    tls.sendall(GREETING)
                    tls.unwrap()
            except (OSError, ssl.SSLError):
                pass

    def __init__(self, certificate):
        self.certificate = certificate
        super().__init__(("127.0.0.1", 0), self.Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def target(self):
        return f"127.0.0.1:{self.server_address[1]}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
class OverTls(unittest.TestCase):
    """Every workload over TLS against salam --tls-cert, on loopback;
    handshakes counted as full or resumed, and failures as TLS errors."""

    @classmethod
    def setUpClass(cls):
        if SALAM is None:
            raise unittest.SkipTest("needs the salam daemon")
        cls.directory = tempfile.mkdtemp(prefix="salam-bench-tls-")
        cls.ca, cls.full = make_certificate(cls.directory, "localhost")
        cls.other_ca, _ = make_certificate(cls.directory, "other")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.directory, ignore_errors=True)

    def salam(self, *args, backend="io_uring"):
        return harness.Server([SALAM, "--listen", "127.0.0.1:0", "--threads", "1", "--quiet",
                               "--backend", backend, "--tls-cert", self.full, *args])

    @staticmethod
    def target(server):
        return server.addresses[0]

    def assert_tls(self, result, handshakes, full, resumed):
        tls = result["tls"]
        self.assertEqual(tls["version"], "TLSv1.3", result)
        self.assertEqual(tls["cipher"], "TLS_AES_128_GCM_SHA256", result)
        self.assertEqual((tls["handshakes"], tls["full"], tls["resumed"]),
                         (handshakes, full, resumed), result)

    def test_greet_over_tls(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), self.salam(backend=backend) as server:
                result, _ = bench("--target", self.target(server), "--tls", "--requests", 300,
                                  "--concurrency", 8, "--backend", backend, "--server-pid",
                                  server.pid)
                assert_clean(self, result, operations=300)
                self.assert_tls(result, 300, 300, 0)
                self.assertEqual(result["bytes_received"], 300 * len(GREETING))
                self.assertFalse(result["tls"]["resume"])
                self.assertGreater(result["tls"]["handshake_us"]["p50"], 0)
                self.assertGreater(result["server_cpu_s"], 0)
                server.assert_fds_return()
                server.close()

    def test_handshakes_resumed(self):
        # A banner server speaks right after its tickets: the worker's read
        # after the handshake brings the ticket the next handshake offers.
        with self.salam("--greet-first") as server:
            result, _ = bench("--target", self.target(server), "--tls", "--workload", "handshake",
                              "--tls-resume", "--requests", 400, "--concurrency", 4)
            assert_clean(self, result, operations=400)
            # Each worker's first handshake has nothing to offer.
            self.assert_tls(result, 400, 4, 396)
            self.assertEqual(result["tls"]["resume_offered"], 396, result)
            self.assertEqual(result["tls"]["resumption_missed"], 0, result)
            server.assert_fds_return()
            server.close()

    def test_full_handshakes(self):
        with self.salam("--greet-first") as server:
            result, _ = bench("--target", self.target(server), "--tls", "--workload", "handshake",
                              "--duration", "1s", "--concurrency", 8, "--server-pid", server.pid)
            assert_clean(self, result)
            self.assert_tls(result, result["operations"], result["operations"], 0)
            self.assertGreater(result["server_cpu_us_per_op"], 0)
            server.assert_fds_return()
            server.close()

    def test_greetings_resumed(self):
        with self.salam() as server:
            result, _ = bench("--target", self.target(server), "--tls", "--tls-resume",
                              "--requests", 200, "--concurrency", 2)
            assert_clean(self, result, operations=200)
            self.assert_tls(result, 200, 2, 198)
            server.close()

    def test_refused_resumption_says_so(self):
        with FreshKeysTlsServer(self.full) as server:
            args = ("--target", server.target, "--tls", "--workload", "handshake",
                    "--tls-resume", "--requests", 30, "--concurrency", 2)
            result, _ = bench(*args)
            assert_clean(self, result, operations=30)
            tls = result["tls"]
            self.assertEqual(tls["resumed"], 0, result)
            self.assertEqual(tls["resume_offered"], 28, result)
            self.assertEqual(tls["resume_refused"], 28, result)
            self.assertEqual(tls["resumption_missed"], 28, result)
            done = harness.run([BENCH, *map(str, args)], capture_output=True, text=True,
                               timeout=60)
            self.assertRegex(done.stdout, r"resumption +FAILED for 28 handshakes: 28 offered "
                                          r"sessions refused")

    def test_streams_over_tls(self):
        with self.salam("--service", "echo") as server:
            result, _ = bench("--target", self.target(server), "--tls", "--workload", "echo",
                              "--requests", 1000, "--concurrency", 4, "--size", 5000)
            assert_clean(self, result, operations=1000)
            self.assertEqual(result["bytes_received"], 1000 * 5000)
            self.assert_tls(result, 4, 4, 0)  # one handshake per connection
            server.close()
        with self.salam("--service", "discard") as server:
            result, _ = bench("--target", self.target(server), "--tls", "--workload", "discard",
                              "--duration", "1s", "--concurrency", 1, "--server-pid", server.pid)
            assert_clean(self, result)
            self.assertEqual(result["bytes_sent"], result["operations"] * 65536)
            self.assert_tls(result, 1, 1, 0)
            self.assertGreater(result["server_cpu_s"], 0)
            server.close()

    def test_hold_over_tls(self):
        harness.raise_fd_limit()
        with self.salam("--service", "echo") as server:
            result, _ = bench("--target", self.target(server), "--tls", "--workload", "hold",
                              "--concurrency", 200, "--connect-rate", 1000, "--duration", "2s",
                              "--server-pid", server.pid)
            assert_clean(self, result, operations=200)
            self.assertEqual(result["held"], 200)
            self.assert_tls(result, 200, 200, 0)
            self.assertGreater(result["server_rss_per_connection_bytes"], 0, result)
            server.close()

    def test_tls12(self):
        with self.salam() as server:
            result, _ = bench("--target", self.target(server), "--tls", "--tls-version", "1.2",
                              "--requests", 100, "--concurrency", 4)
            assert_clean(self, result, operations=100)
            self.assertEqual(result["tls"]["version"], "TLSv1.2", result)
            self.assertEqual(result["tls"]["cipher"], "ECDHE-ECDSA-AES128-GCM-SHA256", result)
            server.close()
        # TLS 1.2 renews a resumed session in place: every offer resumes.
        with self.salam("--greet-first") as server:
            result, _ = bench("--target", self.target(server), "--tls", "--tls-version", "1.2",
                              "--workload", "handshake", "--tls-resume", "--requests", 100,
                              "--concurrency", 2)
            assert_clean(self, result, operations=100)
            self.assertEqual(result["tls"]["version"], "TLSv1.2", result)
            self.assertEqual(result["tls"]["resumed"], 98, result)  # each worker's first is full
            self.assertEqual(result["tls"]["resumption_missed"], 0, result)
            server.close()

    def test_versions_that_do_not_meet_are_tls_errors(self):
        with self.salam("--tls-min-version", "1.3") as server:
            result, _ = bench("--target", self.target(server), "--tls", "--tls-version", "1.2",
                              "--requests", 20, "--concurrency", 2)
            assert_consistent(self, result, operations=20)
            self.assertEqual(result["errors"]["tls"], 20, result)
            self.assertTrue(result["tls"]["first_failure"], result)
            self.assertEqual(result["tls"]["handshakes"], 0, result)
            server.close()

    def test_verification(self):
        with self.salam() as server:
            target = self.target(server)
            result, _ = bench("--target", target, "--tls", "--tls-ca", self.ca,
                              "--tls-server-name", "localhost", "--requests", 50)
            assert_clean(self, result, operations=50)
            self.assertTrue(result["tls"]["verified"])
            self.assertEqual(result["tls"]["server_name"], "localhost")
            for wrong in (("--tls-ca", self.other_ca, "--tls-server-name", "localhost"),
                          ("--tls-ca", self.ca, "--tls-server-name", "elsewhere.test")):
                with self.subTest(wrong=wrong):
                    result, _ = bench("--target", target, "--tls", *wrong, "--requests", 10,
                                      "--concurrency", 2)
                    assert_consistent(self, result, operations=10)
                    self.assertEqual(result["errors"]["tls"], 10, result)
                    self.assertIn("first_failure", result["tls"], result)
            server.close()


if __name__ == "__main__":
    BENCH = sys.argv.pop(1)
    HELLO_SERVER = sys.argv.pop(1)
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        SALAM = sys.argv.pop(1)
    unittest.main()
