"""A log destination that does not read never stalls the shards: salam's
stderr is a pipe the test stops reading. Every client is still served; the
lines that did not fit are dropped, counted and reported once the pipe is
read again, and the lines of the exit are there. Runs on both backends."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness

BINARY = None
REPORT = re.compile(r"^log: (\d+) line\(s\) dropped: the log destination was not keeping up$")
# What the writer may hold (src/log.cpp's kQueueLimit) and a pipe's buffer.
QUEUE_LIMIT = 4 * 1024 * 1024
PIPE_BUFFER = 64 * 1024


def greet(port, timeout=5):
    return harness.exchange("127.0.0.1", port, b"Hello, server!", timeout=timeout)


def greet_every_one(test, port, count):
    """`count` greetings in turn; each must be answered within 5 s."""
    for i in range(count):
        try:
            reply = greet(port)
        except TimeoutError:
            test.fail(f"client {i} was not answered in 5 s: a shard is stalled")
        test.assertEqual(reply, b"Hello, client!", f"client {i}")


def greet_unix(path):
    return harness.unix_exchange(path, b"Hello, server!", timeout=5)


class Pipe:
    """salam's stderr: read line by line while the test wants to, then left
    alone, then read to its end."""

    def __init__(self):
        self.read_fd, self.write_fd = os.pipe()
        self.data = bytearray()
        self.reader = None

    def read_until(self, pattern, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.data):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in {bytes(self.data[-2000:])!r}")
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                raise AssertionError(f"end of file before {pattern!r}: {bytes(self.data)!r}")
            self.data += chunk
        return re.search(pattern, self.data)

    def read_to_end(self):
        """In the background, until every writer has closed it."""
        def run():
            while chunk := os.read(self.read_fd, 65536):
                self.data += chunk
        self.reader = threading.Thread(target=run, daemon=True)
        self.reader.start()

    def close(self):
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                os.close(fd)
        self.read_fd = self.write_fd = -1


class StuckStderr(unittest.TestCase):
    def test_every_client_is_served_and_the_dropped_lines_are_reported(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                self.check(backend)

    def check(self, backend):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        # A long Unix socket path: it is in both of a client's lines, so that
        # fewer clients fill the queue.
        path = os.path.join(directory.name, "s")
        path += "l" * (100 - len(path))
        pipe = Pipe()
        self.addCleanup(pipe.close)
        process = subprocess.Popen(
            [BINARY, "--backend", backend, "--listen", "127.0.0.1:0", "--listen", "unix:" + path,
             "--log-format", "json", "--admin", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=pipe.write_fd,
            process_group=0)
        self.addCleanup(harness.end_group, process)
        os.close(pipe.write_fd)
        pipe.write_fd = -1

        admin = int(pipe.read_until(rb"admin endpoint on http://127\.0\.0\.1:(\d+)/").group(1))
        port = int(pipe.read_until(rb"listening on 127\.0\.0\.1:(\d+) ").group(1))
        pipe.read_until(rb"listening on unix:")

        # While the pipe is read: what a client of the Unix listener logs.
        start = len(pipe.data)
        for _ in range(10):
            self.assertEqual(greet_unix(path), b"Hello, client!")
        pipe.read_until(rb'(?s)("event":"closed".*){10}')
        per_client = (len(pipe.data) - start) / 10
        clients = 10

        # From here on nobody reads. Before the writer thread, a shard blocked
        # in write(2) once the pipe was full, after about 200 of these, and
        # its clients waited for ever.
        started = time.monotonic()
        greet_every_one(self, port, 2000)
        clients += 2000
        self.assertLess(time.monotonic() - started, 60, "2000 greetings with a stuck stderr")

        # More than the pipe and the queue can hold: lines are dropped.
        flood = int((QUEUE_LIMIT + PIPE_BUFFER) * 1.5 / per_client)
        for i in range(flood):
            self.assertEqual(greet_unix(path), b"Hello, client!", f"client {i} of the flood")
        clients += flood

        # Reading again, the writer catches up and says what it dropped.
        pipe.read_to_end()
        deadline = time.monotonic() + 30
        while b"line(s) dropped" not in pipe.data:
            self.assertLess(time.monotonic(), deadline, "no report of the dropped lines")
            time.sleep(0.05)

        # The admin endpoint counts what was dropped.
        scraped = harness.exchange("127.0.0.1", admin, b"GET /metrics HTTP/1.0\r\n\r\n").decode()
        counted = int(re.search(r"^salam_log_lines_dropped_total (\d+)$", scraped, re.M).group(1))

        # The lines of the exit are written before it ends.
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(15), 0)
        pipe.reader.join(10)
        self.assertFalse(pipe.reader.is_alive(), "salam's stderr stayed open")

        events = {"connected": 0, "closed": 0}
        dropped = 0
        messages = []
        for line in pipe.data.decode().splitlines():
            record = json.loads(line)  # whole lines, never two mixed
            self.assertNotIn(record["level"], ("error", "critical"), line)
            if "event" in record:
                events[record["event"]] += 1
            else:
                messages.append(record["msg"])
                if report := REPORT.match(record["msg"]):
                    self.assertEqual(record["level"], "warning")
                    dropped += int(report.group(1))
        self.assertGreater(dropped, 0)
        self.assertEqual(counted, dropped, "salam_log_lines_dropped_total")
        self.assertEqual(events["connected"] + events["closed"] + dropped, 2 * clients, events)
        self.assertTrue(messages[-1].startswith("connections accepted per shard: "), messages[-3:])
        accepted = [int(n) for n in messages[-1].split(": ")[1].split(", ")]
        self.assertEqual(sum(accepted), clients)

    def test_an_access_log_fifo_nobody_reads_does_not_stall_the_shards(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), tempfile.TemporaryDirectory() as directory:
                fifo = os.path.join(directory, "access")
                os.mkfifo(fifo)
                # A reader that does not read: salam can open it, then fills it.
                reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
                self.addCleanup(os.close, reader)
                with harness.Server([BINARY, "--backend", backend, "--listen", "127.0.0.1:0",
                                     "--access-log", fifo, "--log-format", "json"]) as server:
                    _, port = harness.host_port(server.addresses[0])
                    # About 150 bytes a record: the FIFO is full after some 450.
                    greet_every_one(self, port, 2000)

                    records = bytearray()
                    def read():
                        os.set_blocking(reader, True)
                        while chunk := os.read(reader, 65536):
                            records.extend(chunk)
                    thread = threading.Thread(target=read, daemon=True)
                    thread.start()
                    status, log = server.close()
                    self.assertEqual(status, 0)
                    thread.join(10)
                    self.assertFalse(thread.is_alive(), "the access log stayed open")
                # Every record reached the FIFO, the last ones too, before
                # salam closed it; none went to stderr. The other lines
                # waited for the one writer, and were not lost either.
                closed = [json.loads(line) for line in records.decode().splitlines()]
                self.assertEqual(len(closed), 2000)
                self.assertTrue(all(r["event"] == "closed" and r["reason"] == "done"
                                    for r in closed))
                self.assertNotIn('"event":"closed"', log)
                self.assertEqual(log.count('"event":"connected"'), 2000)
                self.assertNotIn("dropped", log)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
