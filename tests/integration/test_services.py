"""The salam daemon's seven services, black box, against their RFCs.

Each test starts the real binary on an ephemeral port (127.0.0.1:0, the port
read back from the "listening on" log line), talks to it with plain sockets,
and runs once per backend (io_uring and epoll). The harness fails a test on a
crash or an unexpected error-level log line.

Usage: test_services.py PATH/TO/salam [unittest options]
"""
import datetime
import json
import os
import re
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness

BINARY = None
HOST = "127.0.0.1"
SECONDS_1900_TO_1970 = 2208988800
CLOCK_TOLERANCE = 5  # seconds between the server's clock reading and ours
RECORD = (r" info client {ip}:{port} closed: (\w+), (\d+) bytes in, (\d+) bytes out, "
          r"([0-9.]+) ms$")


# --- starting the daemon ----------------------------------------------------

def start(backend, *args, listen=("127.0.0.1:0",)):
    argv = [BINARY, "--backend", backend]
    for address in listen:
        argv += ["--listen", address]
    return harness.Server(argv + list(args))


def run_failing(*args, timeout=10):
    """Runs salam expecting it to refuse to start; returns (status, stderr)."""
    done = harness.run([BINARY, *args], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout, check=False)
    return done.returncode, done.stderr.decode("utf-8", "replace")


def endpoint(server, index=0):
    host, port = server.addresses[index].rsplit(":", 1)
    return host, int(port)


def endpoint_on(server, ip):
    """The listener of `server` bound to `ip`."""
    for address in server.addresses:
        host, port = address.rsplit(":", 1)
        if host == ip:
            return host, int(port)
    raise AssertionError(f"no listener on {ip}: {server.addresses}")


def access_record(server, client_address, timeout=10):
    """Waits for the text access record of the client at (ip, port)."""
    ip, port = client_address[:2]
    match = server.wait_for_log(RECORD.format(ip=re.escape(ip), port=port), timeout)
    return {"reason": match.group(1), "bytes_in": int(match.group(2)),
            "bytes_out": int(match.group(3)), "duration_ms": float(match.group(4))}


def close_cleanly(test, server):
    server.assert_fds_return()
    status, log = server.close()
    test.assertEqual(status, 0, log)
    return log


# --- client helpers -----------------------------------------------------------

def connect(address, timeout=10):
    s = socket.create_connection(address, timeout=timeout)
    s.settimeout(timeout)
    return s


def read_to_eof(s, limit=1 << 20, timeout=10):
    """Reads until end of file; at most `limit` bytes and `timeout` seconds."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while len(data) <= limit:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no end of file within {timeout}s ({len(data)} bytes read)")
        s.settimeout(left)
        chunk = s.recv(65536)
        if not chunk:
            return bytes(data)
        data += chunk
    raise AssertionError(f"more than {limit} bytes before end of file")


def recv_exactly(s, count, timeout=10):
    deadline = time.monotonic() + timeout
    data = bytearray()
    while len(data) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{len(data)} of {count} bytes within {timeout}s")
        s.settimeout(left)
        chunk = s.recv(count - len(data))
        if not chunk:
            raise AssertionError(f"end of file after {len(data)} of {count} bytes")
        data += chunk
    return bytes(data)


def fetch(address, message=b"", timeout=10, half_close=False):
    """Connects, sends `message` (if any; then shuts down writing if
    `half_close`), reads to end of file.

    Returns (reply, the client's own address)."""
    with connect(address, timeout) as s:
        me = s.getsockname()
        if message:
            s.sendall(message)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        return read_to_eof(s, timeout=timeout), me


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def chargen_line(index):
    """Line `index` (from 0) of RFC 864's pattern as salam sends it."""
    start = (1 + index) % 95
    return bytes(32 + (start + column) % 95 for column in range(72)) + b"\r\n"


def write_file(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def json_records(test, log):
    """Every line of a JSON log as an object; fails on error-level lines."""
    records = []
    for line in log.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            raise AssertionError(f"not a JSON object: {line!r} ({e})")
        test.assertIsInstance(record, dict, line)
        test.assertNotIn(record.get("level"), ("error", "critical"), line)
        records.append(record)
    return records


# --- the tests ------------------------------------------------------------------

class Echo(unittest.TestCase):
    """RFC 862: send back whatever arrives, until the client closes."""

    def test_ten_megabytes_come_back_unchanged(self):
        data = os.urandom(10 * 1024 * 1024)
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), start(backend, "--service", "echo") as server:
                with connect(endpoint(server), timeout=20) as s:
                    me = s.getsockname()
                    send_errors = []

                    def send():
                        try:
                            view = memoryview(data)
                            for offset in range(0, len(data), 256 * 1024):
                                s.sendall(view[offset:offset + 256 * 1024])
                            s.shutdown(socket.SHUT_WR)
                        except OSError as e:
                            send_errors.append(e)

                    sender = threading.Thread(target=send, daemon=True)
                    sender.start()
                    received = read_to_eof(s, limit=len(data), timeout=30)
                    sender.join(10)
                    self.assertFalse(sender.is_alive(), "the sender is still blocked")
                    self.assertEqual(send_errors, [])
                self.assertEqual(len(received), len(data))
                self.assertTrue(received == data,
                                f"first difference at byte {first_difference(received, data)}")
                record = access_record(server, me)
                self.assertEqual(record["reason"], "done")
                self.assertEqual(record["bytes_in"], len(data))
                self.assertEqual(record["bytes_out"], record["bytes_in"])
                close_cleanly(self, server)

    def test_interactive_round_trips(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), start(backend, "--service", "echo") as server:
                sent = 0
                with connect(endpoint(server), timeout=5) as s:
                    me = s.getsockname()
                    for i in range(100):
                        line = f"line {i}: {'x' * (i % 7)}\r\n".encode()
                        s.sendall(line)
                        self.assertEqual(recv_exactly(s, len(line), timeout=5), line)
                        sent += len(line)
                    # A single byte, and a byte of every value.
                    s.sendall(b"\x00")
                    self.assertEqual(recv_exactly(s, 1, timeout=5), b"\x00")
                    every = bytes(range(256))
                    s.sendall(every)
                    self.assertEqual(recv_exactly(s, 256, timeout=5), every)
                    sent += 257
                    # Half-close: what is in flight still comes back, then EOF.
                    s.sendall(b"last words")
                    s.shutdown(socket.SHUT_WR)
                    self.assertEqual(read_to_eof(s, timeout=5), b"last words")
                    sent += len(b"last words")
                record = access_record(server, me)
                self.assertEqual(record["reason"], "done")
                self.assertEqual((record["bytes_in"], record["bytes_out"]), (sent, sent))
                close_cleanly(self, server)


class Discard(unittest.TestCase):
    """RFC 863: throw away whatever arrives; never send anything."""

    RSS_TOLERANCE_KIB = 16 * 1024  # growth allowed while 100 MiB flow in

    def test_swallows_100_megabytes_with_flat_memory(self):
        total = 100 * 1024 * 1024
        block = os.urandom(1024 * 1024)
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), start(backend, "--service", "discard") as server:
                # Warm up: the first connection allocates what every one needs.
                reply, _ = fetch(endpoint(server), os.urandom(256 * 1024), half_close=True)
                self.assertEqual(reply, b"")
                before = server.rss_kib()
                peak = before
                with connect(endpoint(server), timeout=20) as s:
                    me = s.getsockname()
                    deadline = time.monotonic() + 40
                    for i in range(total // len(block)):
                        self.assertLess(time.monotonic(), deadline, "100 MiB took too long")
                        s.sendall(block)
                        if i % 8 == 0:
                            readable, _, _ = select.select([s], [], [], 0)
                            self.assertEqual(readable, [], "discard sent something back")
                            peak = max(peak, server.rss_kib())
                    s.shutdown(socket.SHUT_WR)
                    self.assertEqual(read_to_eof(s, timeout=10), b"")
                record = access_record(server, me)
                after = server.rss_kib()
                peak = max(peak, after)
                self.assertLess(peak - before, self.RSS_TOLERANCE_KIB,
                                f"RSS grew from {before} KiB to {peak} KiB")
                self.assertEqual(record["reason"], "done")
                self.assertEqual(record["bytes_in"], total)
                self.assertEqual(record["bytes_out"], 0)
                close_cleanly(self, server)


class Chargen(unittest.TestCase):
    """RFC 864: lines of the printable ASCII ring until the client closes."""

    LINES = 200

    def check_lines(self, data):
        for i in range(self.LINES):
            line = data[i * 74:(i + 1) * 74]
            self.assertEqual(len(line), 74)
            self.assertTrue(line.endswith(b"\r\n"), f"line {i}: {line!r}")
            body = line[:72]
            self.assertTrue(all(32 <= b <= 126 for b in body), f"line {i}: {line!r}")
            # 72 consecutive characters of the 95-character ring...
            for a, b in zip(body, body[1:]):
                self.assertEqual((b - 32) % 95, (a - 32 + 1) % 95, f"line {i}: {line!r}")
            # ...starting one further along than the line before.
            if i > 0:
                previous = data[(i - 1) * 74]
                self.assertEqual((body[0] - 32) % 95, (previous - 32 + 1) % 95, f"line {i}")
            self.assertEqual(line, chargen_line(i), f"line {i}")
        self.assertEqual(data[0:1], b"!")  # as in the RFC's example

    def test_pattern_then_client_close(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), start(backend, "--service", "chargen") as server:
                with connect(endpoint(server), timeout=5) as s:
                    me = s.getsockname()
                    data = recv_exactly(s, self.LINES * 74, timeout=10)
                self.check_lines(data)
                record = access_record(server, me)
                self.assertEqual(record["reason"], "client_closed")
                self.assertEqual(record["bytes_in"], 0)
                self.assertGreaterEqual(record["bytes_out"], len(data))
                # It survives, and every connection starts the pattern afresh.
                with connect(endpoint(server), timeout=5) as s:
                    me = s.getsockname()
                    self.assertEqual(recv_exactly(s, 74, timeout=5), chargen_line(0))
                self.assertEqual(access_record(server, me)["reason"], "client_closed")
                close_cleanly(self, server)

    def test_data_from_the_client_is_thrown_away(self):
        """RFC 864: "any data received is thrown away" - so a client that
        sends while it reads (or without reading) is never blocked."""
        total = 16 * 1024 * 1024
        block = b"z" * (1024 * 1024)
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), start(backend, "--service", "chargen") as server:
                with connect(endpoint(server), timeout=5) as s:
                    sent = 0
                    deadline = time.monotonic() + 15
                    try:
                        while sent < total and time.monotonic() < deadline:
                            s.sendall(block)  # 5 s at most per block (the socket timeout)
                            sent += len(block)
                    except socket.timeout:
                        pass
                    self.assertEqual(sent, total,
                                     f"the server stopped taking input after {sent} bytes: "
                                     "chargen does not read (and throw away) what arrives")
                    self.assertEqual(recv_exactly(s, 74, timeout=5), chargen_line(0))
                close_cleanly(self, server)


class Daytime(unittest.TestCase):
    """RFC 867: the date and time as one line of text, then close."""

    FORMAT = "%A, %B %d, %Y %H:%M:%S-UTC"
    SHAPE = re.compile(r"^[A-Z][a-z]+day, [A-Z][a-z]+ \d\d, \d{4} \d\d:\d\d:\d\d-UTC\r\n$")

    def test_one_line_of_utc_time_then_eof(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), start(backend, "--service", "daytime") as server:
                reply, me = fetch(endpoint(server))
                now = datetime.datetime.now(datetime.timezone.utc)
                text = reply.decode("ascii")
                self.assertRegex(text, self.SHAPE)
                self.assertEqual(text.count("\r\n"), 1)
                stamp = datetime.datetime.strptime(text[:-2], self.FORMAT).replace(
                    tzinfo=datetime.timezone.utc)
                self.assertLess(abs((stamp - now).total_seconds()), CLOCK_TOLERANCE, text)
                self.assertEqual(text.split(",")[0], stamp.strftime("%A"), "weekday is wrong")
                record = access_record(server, me)
                self.assertEqual(record["reason"], "done")
                self.assertEqual(record["bytes_out"], len(reply))
                # Input is thrown away; the reply is the same.
                reply, _ = fetch(endpoint(server), b"what time is it?\r\n")
                self.assertRegex(reply.decode("ascii"), self.SHAPE)
                close_cleanly(self, server)


class Time(unittest.TestCase):
    """RFC 868: seconds since 1900 as 32 bits, big-endian, then close."""

    def test_four_bytes_of_seconds_since_1900(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), start(backend, "--service", "time") as server:
                reply, me = fetch(endpoint(server))
                expected = (int(time.time()) + SECONDS_1900_TO_1970) % 2**32
                self.assertEqual(len(reply), 4, reply)
                (value,) = struct.unpack(">I", reply)
                difference = (value - expected + 2**31) % 2**32 - 2**31  # across the 2036 wrap
                self.assertLessEqual(abs(difference), CLOCK_TOLERANCE,
                                     f"server says {value}, client expects {expected}")
                record = access_record(server, me)
                self.assertEqual((record["reason"], record["bytes_out"]), ("done", 4))
                close_cleanly(self, server)


class Qotd(unittest.TestCase):
    """RFC 865: one quote (at most 512 bytes) per connection, then close."""

    def setUp(self):
        self.directory = tempfile.TemporaryDirectory(prefix="salam-qotd-")
        self.addCleanup(self.directory.cleanup)

    def file(self, name, text):
        return write_file(self.directory.name, name, text)

    def check_quote(self, quote):
        self.assertTrue(quote.endswith(b"\r\n"), quote)
        self.assertLessEqual(len(quote), 512)
        self.assertNotIn(b"\n", quote.replace(b"\r\n", b""), "a bare LF")
        self.assertNotIn(b"\r", quote.replace(b"\r\n", b""), "a bare CR")
        quote.decode("utf-8")

    def test_built_in_quotes(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), \
                    start(backend, "--service", "qotd", "--threads", "1") as server:
                quotes = []
                for _ in range(12):
                    quote, me = fetch(endpoint(server))
                    self.check_quote(quote)
                    quotes.append(quote)
                self.assertGreater(len(set(quotes)), 1, "always the same quote")
                self.assertEqual(access_record(server, me)["reason"], "done")
                close_cleanly(self, server)

    def test_fortune_file_quotes_take_turns(self):
        path = self.file("quotes", "one\n%\ntwo\nlines\n%\nthree\n")
        expected = [b"one\r\n", b"two\r\nlines\r\n", b"three\r\n"]
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), start(
                    backend, "--service", "qotd", "--quotes-file", path, "--threads", "1") as server:
                got = [fetch(endpoint(server))[0] for _ in range(7)]
                self.assertEqual(got, expected * 2 + expected[:1])
                close_cleanly(self, server)

    def test_every_quote_is_served_with_several_threads(self):
        """Turns are kept per thread; still, 12 connections to 2 threads give
        one of them at least 6, so every one of the 3 quotes shows up."""
        path = self.file("quotes", "one\n%\ntwo\n%\nthree\n")
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), start(
                    backend, "--service", "qotd", "--quotes-file", path, "--threads", "2") as server:
                got = [fetch(endpoint(server))[0] for _ in range(12)]
                self.assertEqual(set(got), {b"one\r\n", b"two\r\n", b"three\r\n"})
                close_cleanly(self, server)

    def test_two_qotd_listeners_each_rotate_through_their_own_quotes(self):
        """A client of one listener must not make the other skip quotes."""
        first = self.file("first", "a1\n%\na2\n")
        second = self.file("second", "b1\n%\nb2\n")
        for backend in harness.BACKENDS:
            config = self.file("salam.toml", f"""
threads = 1
backend = "{backend}"
[[listen]]
address = "127.0.0.1:0"
service = "qotd"
quotes-file = "{first}"
[[listen]]
address = "127.0.0.2:0"
service = "qotd"
quotes-file = "{second}"
""")
            with self.subTest(backend=backend), \
                    harness.Server([BINARY, "--config", config]) as server:
                a, b = endpoint_on(server, "127.0.0.1"), endpoint_on(server, "127.0.0.2")
                got_a, got_b = [], []
                for _ in range(3):
                    got_a.append(fetch(a)[0])
                    got_b.append(fetch(b)[0])
                self.assertEqual(got_a, [b"a1\r\n", b"a2\r\n", b"a1\r\n"])
                self.assertEqual(got_b, [b"b1\r\n", b"b2\r\n", b"b1\r\n"])
                close_cleanly(self, server)

    def test_a_quote_of_exactly_512_bytes_is_served(self):
        path = self.file("edge", "y" * 510 + "\n")  # 510 + CR LF
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), start(
                    backend, "--service", "qotd", "--quotes-file", path) as server:
                quote, _ = fetch(endpoint(server))
                self.assertEqual(quote, b"y" * 510 + b"\r\n")
                close_cleanly(self, server)

    def test_a_quote_over_512_bytes_is_refused_at_start(self):
        long_quote = self.file("long", "short\n%\n" + "x" * 600 + "\n%\nok\n")
        one_too_many = self.file("edge", "y" * 511 + "\n")  # 513 bytes with CR LF
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                for path, line in ((long_quote, 3), (one_too_many, 1)):
                    status, stderr = run_failing("--backend", backend, "--listen", "127.0.0.1:0",
                                                 "--service", "qotd", "--quotes-file", path)
                    self.assertEqual(status, 2, stderr)
                    self.assertIn(f"{path}:{line}:", stderr)
                    self.assertIn("512", stderr)

    def test_a_missing_quotes_file_is_refused_at_start(self):
        path = os.path.join(self.directory.name, "no-such-file")
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                status, stderr = run_failing("--backend", backend, "--listen", "127.0.0.1:0",
                                             "--service", "qotd", "--quotes-file", path)
                self.assertEqual(status, 2, stderr)
                self.assertIn(path, stderr)


class GreetOptions(unittest.TestCase):
    """The default service and its options."""

    def test_message_with_escapes(self):
        cases = [("hi\\r\\n", b"hi\r\n"), ("\\x41\\tB\\\\\\0", b"A\tB\\\x00")]
        for backend in harness.BACKENDS:
            for option, expected in cases:
                with self.subTest(backend=backend, message=option), \
                        start(backend, "--message", option) as server:
                    reply, me = fetch(endpoint(server), b"Hello, server!")
                    self.assertEqual(reply, expected)
                    record = access_record(server, me)
                    self.assertEqual(record["reason"], "done")
                    self.assertEqual(record["bytes_out"], len(expected))
                    close_cleanly(self, server)

    def test_bad_escapes_are_refused(self):
        for backend in harness.BACKENDS:
            for option in ("\\q", "trailing\\", "\\x4"):
                with self.subTest(backend=backend, message=option):
                    status, stderr = run_failing("--backend", backend, "--listen", "127.0.0.1:0",
                                                 "--message", option)
                    self.assertEqual(status, 2, stderr)
                    self.assertIn("--message", stderr)

    def test_greet_first_sends_a_banner_without_input(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), start(
                    backend, "--greet-first", "--message", "220 salam\\r\\n",
                    "--read-timeout", "10s") as server:
                with connect(endpoint(server), timeout=3) as s:
                    me = s.getsockname()
                    started = time.monotonic()
                    reply = read_to_eof(s, timeout=3)  # well before the read timeout
                    self.assertLess(time.monotonic() - started, 3)
                self.assertEqual(reply, b"220 salam\r\n")
                record = access_record(server, me)
                self.assertEqual((record["reason"], record["bytes_in"]), ("done", 0))
                close_cleanly(self, server)

    def test_without_greet_first_a_silent_client_gets_nothing(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), \
                    start(backend, "--read-timeout", "300ms") as server:
                with connect(endpoint(server), timeout=5) as s:
                    me = s.getsockname()
                    started = time.monotonic()
                    reply = read_to_eof(s, timeout=5)
                    waited = time.monotonic() - started
                self.assertEqual(reply, b"")
                self.assertGreaterEqual(waited, 0.25)  # never early (timer slack: 50 ms)
                self.assertLess(waited, 4)              # late by a generous margin
                self.assertEqual(access_record(server, me)["reason"], "timeout_first_byte")
                close_cleanly(self, server)

    def test_read_size(self):
        """--read-size bounds the one read; the reply follows whatever the
        first read got, and the rest of the input is drained by the engine
        after the record (so it is not counted), never answered with an RST."""
        for backend in harness.BACKENDS:
            for size in ("1", "65536"):
                with self.subTest(backend=backend, read_size=size), \
                        start(backend, "--read-size", size, "--message", "ok") as server:
                    reply, me = fetch(endpoint(server), b"abcdefgh" * 100)
                    self.assertEqual(reply, b"ok")
                    record = access_record(server, me)
                    self.assertEqual(record["reason"], "done")
                    self.assertEqual(record["bytes_out"], 2)
                    self.assertEqual(record["bytes_in"], min(int(size), 800))
                    close_cleanly(self, server)
            for size in ("0", "65537", "-1"):
                with self.subTest(backend=backend, read_size=size):
                    status, stderr = run_failing("--backend", backend, "--listen", "127.0.0.1:0",
                                                 "--read-size", size)
                    self.assertEqual(status, 2, stderr)
                    self.assertIn("--read-size", stderr)


class ConfigFile(unittest.TestCase):
    """Several listeners with different services in one process."""

    def test_greet_echo_daytime_time_at_once(self):
        with tempfile.TemporaryDirectory(prefix="salam-config-") as directory:
            for backend in harness.BACKENDS:
                # Each listener on its own loopback address: port 0 twice on
                # one address would be refused as a duplicate.
                config = write_file(directory, "salam.toml", f"""
threads = 2
backend = "{backend}"
log-format = "text"

[[listen]]
address = "127.0.0.1:0"
service = "greet"
message = 'hey\\r\\n'
read-timeout = "300ms"

[[listen]]
address = "127.0.0.2:0"
service = "echo"

[[listen]]
address = "127.0.0.3:0"
service = "daytime"

[[listen]]
address = "127.0.0.4:0"
service = "time"
""")
                with self.subTest(backend=backend), \
                        harness.Server([BINARY, "--config", config]) as server:
                    self.assertEqual(len(server.addresses), 4, server.log())
                    self.assertEqual(server.log().count(f", {backend})"), 4, server.log())
                    greet = endpoint_on(server, "127.0.0.1")
                    echo = endpoint_on(server, "127.0.0.2")
                    daytime = endpoint_on(server, "127.0.0.3")
                    clock = endpoint_on(server, "127.0.0.4")

                    self.assertEqual(fetch(greet, b"hello")[0], b"hey\r\n")
                    reply, me = fetch(greet)  # silent: closed at the file's read-timeout
                    self.assertEqual(reply, b"")
                    self.assertEqual(access_record(server, me)["reason"], "timeout_first_byte")

                    with connect(echo, timeout=5) as s:
                        s.sendall(b"ping\n")
                        self.assertEqual(recv_exactly(s, 5, timeout=5), b"ping\n")
                        s.shutdown(socket.SHUT_WR)
                        self.assertEqual(read_to_eof(s, timeout=5), b"")

                    text = fetch(daytime)[0].decode("ascii")
                    self.assertRegex(text, Daytime.SHAPE)

                    (value,) = struct.unpack(">I", fetch(clock)[0])
                    expected = (int(time.time()) + SECONDS_1900_TO_1970) % 2**32
                    self.assertLessEqual(abs((value - expected + 2**31) % 2**32 - 2**31),
                                         CLOCK_TOLERANCE)
                    close_cleanly(self, server)


class JsonAccessLog(unittest.TestCase):
    """--log-format json: a "connected" and a "closed" object per connection."""

    def test_records_of_a_known_exchange(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), start(
                    backend, "--log-format", "json", "--message", "hi\\r\\n") as server:
                listening = f"{server.addresses[0]}"
                started = time.monotonic()
                reply, me = fetch(endpoint(server), b"hello")
                elapsed_ms = (time.monotonic() - started) * 1000
                self.assertEqual(reply, b"hi\r\n")
                client = f"{me[0]}:{me[1]}"
                server.wait_for_log(rf'"event":"closed","client":"{re.escape(client)}"')
                with connect(endpoint(server), timeout=5) as s:
                    s.settimeout(5)
                # ^ a second client closing at once: its records must not mix with the first's
                server.wait_for_log(r'"event":"closed"(.|\n)*"event":"closed"')
                server.assert_fds_return()
                status, log = server.close()
                self.assertEqual(status, 0)

                records = json_records(self, log)
                mine = [r for r in records if r.get("client") == client]
                self.assertEqual([r.get("event") for r in mine], ["connected", "closed"], log)
                connected, closed = mine
                for record in mine:
                    self.assertEqual(record["level"], "info")
                    self.assertEqual(record["service"], "greet")
                    # The listener as configured or as bound (port 0 → real port).
                    self.assertIn(record["listener"], ("127.0.0.1:0", listening))
                    self.assertIsInstance(record["time"], str)
                self.assertEqual(closed["bytes_in"], 5)
                self.assertEqual(closed["bytes_out"], 4)
                self.assertEqual(closed["reason"], "done")
                self.assertIsInstance(closed["duration_ms"], (int, float))
                self.assertGreaterEqual(closed["duration_ms"], 0)
                self.assertLess(closed["duration_ms"], elapsed_ms + 1000)
                for key in ("bytes_in", "bytes_out", "duration_ms", "reason"):
                    self.assertNotIn(key, connected)
                # The second client's records are whole objects too.
                events = [r.get("event") for r in records if "event" in r]
                self.assertEqual(events.count("connected"), 2)
                self.assertEqual(events.count("closed"), 2)
                self.assertTrue(any("listening on" in r.get("msg", "") for r in records))


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
