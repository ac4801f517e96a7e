"""salam-bench against real servers: its counts must add up, a correct
server must show no errors, and a wrong one must show every operation as
the error it is.

Usage: test_salam_bench.py SALAM_BENCH HELLO_SERVER

The greeting server is examples/hello_server (127.0.0.1:8888, on both
backends). Echo, discard, idle and misbehaving servers are small Python
servers in this file, on ephemeral ports. Every run is bounded: about a
second, or a fixed number of operations, with a timeout on the process.
"""
import asyncio
import json
import os
import socket
import socketserver
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

BENCH = None
HELLO_SERVER = None
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
    kinds = ("refused", "reset", "timeout", "wrong_reply", "other")
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


if __name__ == "__main__":
    BENCH = sys.argv.pop(1)
    HELLO_SERVER = sys.argv.pop(1)
    unittest.main()
