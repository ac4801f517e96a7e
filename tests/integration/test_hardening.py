"""What an operator gives salam, and the resource edges it meets, must never
crash it, hang it or end it: a file that is a directory, a device, a FIFO or
too large; a busy Unix socket; control characters and huge values; a signal
in the first milliseconds; a restart right after a kill; a client that never
reads. Each test here failed before the fix it names."""
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import harness

BINARY = None


def run(*args, timeout=20):
    return harness.run([BINARY, *args], capture_output=True, text=True, timeout=timeout)


class Workspace(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def fifo(self, name="fifo"):
        os.mkfifo(self.path(name))
        return self.path(name)

    def sparse(self, name, size):
        with open(self.path(name), "wb") as f:
            f.truncate(size)
        return self.path(name)

    def assert_one_line_error(self, result, status, *expected):
        self.assertEqual(result.returncode, status, result.stderr)
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"one line of explanation, got: {result.stderr!r}")
        self.assertTrue(lines[0].startswith("salam: "), lines[0])
        for text in expected:
            self.assertIn(text, lines[0])
        return lines[0]


class InputFiles(Workspace):
    """Every file salam reads goes through one reader: a regular file of
    bounded size, opened without blocking."""

    def files_of_each_kind(self):
        return {
            "is a directory": self.dir.name,
            "is a device": "/dev/zero",
            "is a FIFO": self.fifo(),
        }

    def test_a_directory_device_or_fifo_is_refused_at_start(self):
        # Before: a directory as the access file aborted (status 134),
        # /dev/zero grew without bound, a FIFO hung in open(), and a
        # directory or device was taken as an empty configuration.
        for why, path in self.files_of_each_kind().items():
            for args, what in (
                    (["--check-config", path], "cannot read configuration"),
                    (["--config", path], "cannot read configuration"),
                    (["--access-file", path, "--check-config", self.write("ok.toml", "")],
                     "cannot read access rules file"),
                    (["--service", "qotd", "--quotes-file", path,
                      "--check-config", self.write("ok.toml", "")], "cannot read quotes file")):
                with self.subTest(args=args):
                    started = time.monotonic()
                    result = run(*args)
                    self.assertLess(time.monotonic() - started, 5, "it must not block")
                    self.assert_one_line_error(result, 2, what, why)
        result = run("--check-config", "/dev/urandom")
        self.assert_one_line_error(result, 2, "is a device")

    def test_a_file_over_its_size_limit_is_refused(self):
        good = self.write("ok.toml", "")
        for args, limit in (
                (["--check-config", self.sparse("big.toml", (4 << 20) + 1)], "4 MiB"),
                (["--access-file", self.sparse("big.acl", (64 << 20) + 1), "--check-config", good],
                 "64 MiB"),
                (["--service", "qotd", "--quotes-file", self.sparse("big.txt", (16 << 20) + 1),
                  "--check-config", good], "16 MiB")):
            with self.subTest(args=args):
                self.assert_one_line_error(run(*args), 2, f"larger than {limit}")

    def test_many_listeners_are_checked_in_n_log_n(self):
        # 90,000 listeners fit in the 4 MiB bound; the duplicate check used
        # to compare every pair (100,000 took 15.9 s). Tolerance: 8 s on a
        # noisy 2-core machine, sanitizers included; it takes about 1 s.
        lines = [f'[[listen]]\naddress = "127.0.{i // 60000}.1:{1024 + i % 60000}"\n'
                 for i in range(90_000)]
        path = self.write("many.toml", "".join(lines))
        self.assertLess(os.path.getsize(path), 4 << 20)
        started = time.monotonic()
        result = run("--check-config", path, timeout=60)
        took = time.monotonic() - started
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("(90000 listener(s))", result.stdout)
        self.assertLess(took, 8)
        # A duplicate among them is still found, and named.
        path = self.write("dup.toml", "".join(lines) + lines[12345])
        self.assert_one_line_error(run("--check-config", path, timeout=60), 2,
                                   "address 127.0.0.1:13369 is already used")


class Reload(Workspace):
    """A reload can never end the process: whatever goes wrong, the running
    configuration keeps serving."""

    def test_every_kind_of_failure_keeps_the_running_configuration(self):
        port = harness.free_port()
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        self.addCleanup(busy.close)
        acl = self.write("rules.acl", "allow 127.0.0.0/8\n")
        good = (f'[[listen]]\naddress = "127.0.0.1:{port}"\naccess-file = "{acl}"\n'
                f'access-default = "deny"\n')
        config = self.write("salam.toml", good)

        def replace(path, kind):
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            elif os.path.lexists(path):
                os.unlink(path)
            if kind == "directory":
                os.mkdir(path)
            elif kind == "fifo":
                os.mkfifo(path)
            elif kind.startswith("/dev/"):
                os.symlink(kind, path)
            else:
                with open(path, "w") as f:
                    f.write(kind)

        cases = [
            ("access file becomes a directory", acl, "directory", "is a directory"),
            ("access file becomes /dev/zero", acl, "/dev/zero", "is a device"),
            ("access file becomes a FIFO", acl, "fifo", "is a FIFO"),
            ("config becomes a directory", config, "directory", "is a directory"),
            ("config becomes /dev/urandom", config, "/dev/urandom", "is a device"),
            ("config becomes a FIFO", config, "fifo", "is a FIFO"),
            ("config is malformed", config, "[[listen]\n", "salam.toml:1"),
            ("config names a busy address", config,
             good + f'[[listen]]\naddress = "127.0.0.1:{busy.getsockname()[1]}"\n',
             "Address already in use"),
        ]
        with harness.Server([BINARY, "--config", config]) as server:
            rejected = 0
            for name, path, kind, why in cases:
                with self.subTest(case=name):
                    replace(path, kind)
                    server.process.send_signal(signal.SIGHUP)
                    rejected += 1
                    server.wait_for_count("reload rejected, the running configuration stays",
                                          rejected)
                    self.assertIn(why, server.log().splitlines()[-1])
                    self.assertIsNone(server.process.poll(), "the reload ended the process")
                    self.assertEqual(harness.exchange("127.0.0.1", port), b"Hello, client!")
                    replace(acl, "allow 127.0.0.0/8\n")
                    replace(config, good)
            server.process.send_signal(signal.SIGHUP)
            server.wait_for_log("configuration reloaded")
            self.assertEqual(harness.exchange("127.0.0.1", port), b"Hello, client!")
            server.close(allowed_errors=("reload rejected",))

    @unittest.skipIf(harness.SANITIZED, "sanitizers reserve terabytes of address space: an "
                     "address-space limit cannot run under them")
    def test_out_of_memory_during_a_reload_keeps_the_running_configuration(self):
        port = harness.free_port()
        acl = self.write("rules.acl", "allow 127.0.0.0/8\n")
        good = f'[[listen]]\naddress = "127.0.0.1:{port}"\naccess-file = "{acl}"\n'
        config = self.write("salam.toml", good)
        with harness.Server([BINARY, "--config", config, "--threads", "1"]) as server:
            with open(f"/proc/{server.pid}/status") as f:
                size_kib = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
            # Three million rules (57 MB) need far more than the 64 MiB
            # of address space left to the process.
            with open(acl, "w") as f:
                for i in range(3_000_000):
                    f.write(f"deny 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32\n")
            limit = (size_kib << 10) + (64 << 20)
            _, hard = resource.prlimit(server.pid, resource.RLIMIT_AS)
            resource.prlimit(server.pid, resource.RLIMIT_AS, (limit, hard))
            server.process.send_signal(signal.SIGHUP)
            server.wait_for_log("reload rejected, the running configuration stays: out of memory",
                                timeout=60)
            self.assertIsNone(server.process.poll())
            self.assertEqual(harness.exchange("127.0.0.1", port), b"Hello, client!")
            resource.prlimit(server.pid, resource.RLIMIT_AS, (hard, hard))
            with open(acl, "w") as f:
                f.write("allow 127.0.0.0/8\n")
            server.process.send_signal(signal.SIGHUP)
            server.wait_for_log("configuration reloaded")
            server.close(allowed_errors=("reload rejected",))


class BusyUnixSocket(Workspace):
    """A Unix listener path that another process's socket holds, with its
    queue full: the stale-socket probe used to block in connect()."""

    def busy_socket(self):
        path = self.path("busy.sock")
        owner = socket.socket(socket.AF_UNIX)
        owner.bind(path)
        owner.listen(0)  # never accepts
        self.addCleanup(owner.close)
        queued = []
        for _ in range(64):
            client = socket.socket(socket.AF_UNIX)
            client.setblocking(False)
            try:
                client.connect(path)
            except BlockingIOError:
                client.close()
                break
            queued.append(client)
        self.addCleanup(lambda: [c.close() for c in queued])
        return path

    def test_start_fails_at_once(self):
        path = self.busy_socket()
        started = time.monotonic()
        result = run("--listen", f"unix:{path}", timeout=30)
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("Address already in use", result.stderr)
        self.assertTrue(os.path.exists(path), "somebody's live socket was removed")

    def test_a_reload_that_adds_it_is_rejected_and_signals_still_work(self):
        path = self.busy_socket()
        port = harness.free_port()
        good = f'[[listen]]\naddress = "127.0.0.1:{port}"\n'
        config = self.write("salam.toml", good)
        with harness.Server([BINARY, "--config", config]) as server:
            self.write("salam.toml", good + f'[[listen]]\naddress = "unix:{path}"\n')
            server.process.send_signal(signal.SIGHUP)
            server.wait_for_log("reload rejected.*Address already in use")
            self.assertEqual(harness.exchange("127.0.0.1", port), b"Hello, client!")
            status, _ = server.close(allowed_errors=("reload rejected",))
            self.assertEqual(status, 0)


class OperatorText(Workspace):
    """Values quoted in messages are escaped and cut: no forged line, no
    100 KB line."""

    def test_control_characters_are_escaped_on_the_command_line(self):
        line = self.assert_one_line_error(
            run("--listen", "127.0.0.1:1\n2026-12-01T00:00:00.000Z info FORGED"), 2,
            "bad address", "\\x0a")
        self.assertNotIn("\n", line)
        line = self.assert_one_line_error(run("--service", "greet\x1b[2J"), 2, "unknown service",
                                          "greet\\x1b[2J")

    def test_long_values_are_cut(self):
        for args in (["--service", "a" * 100_000], ["--listen", "1" * 100_000],
                     ["--threads", "9" * 100_000], ["--log-level", "x" * 100_000]):
            with self.subTest(flag=args[0]):
                result = run(*args)
                self.assertEqual(result.returncode, 2)
                self.assertLess(len(result.stderr), 1000, result.stderr[:300])

    def test_a_forged_key_in_the_file_stays_on_its_line_at_start_and_at_reload(self):
        evil = '"evil\\nkey" = 1\n'
        line = self.assert_one_line_error(run("--check-config", self.write("evil.toml", evil)),
                                          2, "unknown key 'evil\\x0akey'")
        self.assertNotIn("\n", line)
        port = harness.free_port()
        config = self.write("salam.toml", f'[[listen]]\naddress = "127.0.0.1:{port}"\n')
        with harness.Server([BINARY, "--config", config]) as server:
            self.write("salam.toml",
                       f'"x\\n2026-12-01T00:00:00.000Z info FORGED" = 1\n'
                       f'service = "{"b" * 100_000}"\n')
            server.process.send_signal(signal.SIGHUP)
            server.wait_for_log("reload rejected")
            for line in server.log().splitlines():
                self.assertNotIn("info FORGED", line[:40])
                self.assertLess(len(line), 2000)
            server.close(allowed_errors=("reload rejected",))


def blocked_signals(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("SigBlk:"):
                return int(line.split()[1], 16)
    return 0


def has_sockets(pid):
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                return True
        except FileNotFoundError:
            pass
    return False


def stop_and_close(process):
    if process.poll() is None:
        process.kill()
    process.wait()
    process.stderr.close()


class Signals(Workspace):
    def test_a_sighup_while_starting_does_not_end_the_process(self):
        # Before: the signals were blocked only once the listeners were
        # open, and 6 of 20 SIGHUPs sent within 0-4 ms of the start ended
        # the process (SIGHUP's default action). Now a constructor blocks
        # them before main(); only the dynamic loader runs earlier. A
        # million access rules make the start-up work before the listeners
        # last long enough (over 100 ms) to be seen: the mask must be set
        # before it ends, and a SIGHUP sent then must not end the process.
        wanted = (1 << (signal.SIGHUP - 1)) | (1 << (signal.SIGTERM - 1)) | \
            (1 << (signal.SIGINT - 1))
        rules = self.path("rules.acl")
        with open(rules, "w") as f:
            for i in range(1_000_000):
                f.write(f"deny 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32\n")
        for attempt in range(3):
            with self.subTest(attempt=attempt):
                server = subprocess.Popen(
                    [BINARY, "--listen", "127.0.0.1:0", "-q", "--access-file", rules],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                self.addCleanup(stop_and_close, server)
                # The mask is set as soon as salam's own code runs (a few
                # ms, longer under a sanitizer, whose runtime starts first).
                deadline = time.monotonic() + 10
                while blocked_signals(server.pid) & wanted != wanted:
                    self.assertIsNone(server.poll())
                    self.assertLess(time.monotonic(), deadline, "the signals are never blocked")
                    time.sleep(0.001)
                self.assertFalse(has_sockets(server.pid),
                                 "the signals were blocked only after start-up work")
                server.send_signal(signal.SIGHUP)
                line = server.stderr.readline()
                self.assertIn("listening on", line, f"exit status {server.poll()}")
                server.send_signal(signal.SIGTERM)
                self.assertEqual(server.wait(10), 0, server.stderr.read())


class ExitStatus(Workspace):
    def test_an_unusable_access_log_exits_2_with_a_plain_line(self):
        for path, why in (("/nonexistent/dir/access.log", "No such file or directory"),
                          (self.dir.name, "Is a directory"),
                          ("/proc/version", "")):
            with self.subTest(path=path):
                result = run("--listen", "127.0.0.1:0", "--access-log", path)
                self.assert_one_line_error(result, 2, "access log", why)


class Restart(Workspace):
    def test_a_restart_right_after_a_kill_comes_up(self):
        # Before, on io_uring: 10 of 10 restarts exited with "Address
        # already in use"; the killed process's ring lets go of its
        # listening socket some milliseconds after the process is gone.
        for backend in harness.BACKENDS:
            port = harness.free_port()
            argv = [BINARY, "--backend", backend, "--listen", f"127.0.0.1:{port}", "-q"]
            for attempt in range(5):
                with self.subTest(backend=backend, attempt=attempt):
                    with harness.Server(argv) as first:
                        for _ in range(5):
                            self.assertEqual(harness.exchange("127.0.0.1", port),
                                             b"Hello, client!")
                        first.process.kill()
                        first.process.wait()
                    with harness.Server(argv) as second:
                        self.assertEqual(harness.exchange("127.0.0.1", port), b"Hello, client!")
                        self.assertEqual(second.close()[0], 0)


def tcp_memory_pages():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("mem") + 1])
    raise AssertionError("no TCP line in /proc/net/sockstat")


class NonReadingClients(Workspace):
    """A client that stops reading pins what the server's send queue holds:
    uncapped, the kernel autotunes it to about 4 MB."""

    CLIENTS = 50

    def test_kernel_memory_per_non_reading_client_is_bounded(self):
        with harness.Server([BINARY, "--listen", "127.0.0.1:0", "--service", "chargen", "-q"]) \
                as server:
            host, port = harness.host_port(server.addresses[0])
            before = tcp_memory_pages()
            clients = []
            for _ in range(self.CLIENTS):
                client = socket.socket()
                # A small receive window, so that what is measured is the
                # server's side.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
                client.connect((host, port))
                clients.append(client)
            time.sleep(2)  # the send queues fill
            pinned = (tcp_memory_pages() - before) * os.sysconf("SC_PAGE_SIZE")
            for client in clients:
                client.close()
            # With the default 128 KiB send buffer each client pins about
            # 300 KB (both ends); uncapped, about 4 MB. Tolerance: 1 MB a
            # client, for other tests' sockets on the same host.
            self.assertLess(pinned / self.CLIENTS, 1 << 20,
                            f"{pinned / self.CLIENTS / 1024:.0f} KiB per non-reading client")
            server.close()

    def test_the_write_timeout_ends_a_non_reading_client(self):
        with harness.Server([BINARY, "--listen", "127.0.0.1:0", "--service", "chargen",
                             "--write-timeout", "1s"]) as server:
            host, port = harness.host_port(server.addresses[0])
            client = socket.create_connection((host, port))
            started = time.monotonic()
            server.wait_for_log("closed: timeout_write", timeout=10)
            # Tolerance: the timeout is 1 s; up to 5 s on a noisy machine.
            self.assertLess(time.monotonic() - started, 5)
            client.close()
            server.close()


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
