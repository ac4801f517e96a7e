"""Signals: SIGTERM and SIGINT drain, a second signal cuts the drain short,
SIGHUP reloads the configuration file without dropping connections, and
a bad file is rejected while the running configuration keeps serving."""
import ctypes
import http.client
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest

import harness

BINARY = None
ADMIN = r"admin endpoint on http://(\S+)/"  # the log line that names the admin endpoint


class Drain(unittest.TestCase):
    def test_sigterm_lets_clients_in_flight_finish(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), harness.Server(
                    [BINARY, "--backend", backend, "--listen", "127.0.0.1:0"]) as server:
                host, port = harness.host_port(server.addresses[0])
                clients = [socket.create_connection((host, port), timeout=10) for _ in range(20)]
                server.wait_for_count(r" connected$", 20)
                server.process.send_signal(signal.SIGTERM)
                server.wait_for_log(r"stopping; connections have 10000 ms to finish")
                # New clients are refused at once...
                deadline = time.monotonic() + 3
                while not harness.refused(host, port) and time.monotonic() < deadline:
                    time.sleep(0.02)
                self.assertTrue(harness.refused(host, port))
                # ...while those in flight still get their reply.
                for client in clients:
                    client.sendall(b"hi")
                for client in clients:
                    self.assertEqual(client.recv(100), b"Hello, client!")
                    client.close()
                self.assertEqual(server.process.wait(10), 0, "a clean drain exits with 0")
                self.assertEqual(server.close()[0], 0)

    def test_the_drain_deadline_closes_what_is_left(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), harness.Server(
                    [BINARY, "--backend", backend, "--listen", "127.0.0.1:0", "--read-timeout", "1m",
                     "--drain-timeout", "500ms"]) as server:
                host, port = harness.host_port(server.addresses[0])
                silent = [socket.create_connection((host, port), timeout=10) for _ in range(10)]
                server.wait_for_count(r" connected$", 10)
                started = time.monotonic()
                server.process.send_signal(signal.SIGINT)
                status = server.process.wait(10)
                took = time.monotonic() - started
                self.assertGreaterEqual(took, 0.45)
                self.assertLess(took, 5)
                # A stop that was asked for and done exits 0 (systemd would
                # mark the unit failed otherwise), with a warning counting
                # what the deadline cut.
                self.assertEqual(status, 0, "a requested stop exits 0 even when it cuts")
                for client in silent:
                    self.assertEqual(client.recv(100), b"")
                    client.close()
                self.assertEqual(server.log().count("closed: shutdown"), 10)
                self.assertIn("the drain deadline closed 10 connections", server.log())
                server.close()

    def test_a_second_signal_ends_the_drain_at_once(self):
        with harness.Server([BINARY, "--listen", "127.0.0.1:0", "--read-timeout", "1m",
                             "--drain-timeout", "1m"]) as server:
            host, port = harness.host_port(server.addresses[0])
            silent = [socket.create_connection((host, port), timeout=10) for _ in range(5)]
            server.wait_for_count(r" connected$", 5)
            server.process.send_signal(signal.SIGTERM)
            server.wait_for_log(r"stopping")
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            self.assertEqual(server.process.wait(10), 0)
            self.assertLess(time.monotonic() - started, 3)
            self.assertIn("second signal", server.log())
            for client in silent:
                client.close()
            server.close()


class Reload(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.path = os.path.join(self.dir.name, "salam.toml")

    def write(self, text):
        with open(self.path + ".new", "w") as f:
            f.write(text)
        os.replace(self.path + ".new", self.path)

    def reload(self, server, expect):
        before = len(server.log())
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while expect not in server.log()[before:]:
            self.assertLess(time.monotonic(), deadline, f"no '{expect}' after SIGHUP:\n{server.log()}")
            time.sleep(0.02)

    def test_reload_changes_adds_and_removes_listeners_without_dropping_connections(self):
        for backend in harness.BACKENDS:
            a, b = harness.free_port(), harness.free_port()
            self.write(f'[[listen]]\naddress = "127.0.0.1:{a}"\nmessage = "one"\n')
            with self.subTest(backend=backend), harness.Server(

                    [BINARY, "--backend", backend, "--config", self.path]) as server:
                self.assertEqual(harness.exchange("127.0.0.1", a), b"one")
                held = socket.create_connection(("127.0.0.1", a), timeout=10)
                server.wait_for_count(r" connected$", 2)

                self.write(f'[[listen]]\naddress = "127.0.0.1:{a}"\nmessage = "two"\n'
                           f'[[listen]]\naddress = "127.0.0.1:{b}"\nservice = "echo"\n')
                self.reload(server, "configuration reloaded")
                # Every shard takes the new handler shortly after the log line.
                deadline = time.monotonic() + 5
                while harness.exchange("127.0.0.1", a) != b"two":
                    self.assertLess(time.monotonic(), deadline)
                self.assertEqual(harness.exchange("127.0.0.1", b, b"ping", half_close=True), b"ping")
                # The connection accepted before the reload was not dropped,
                # and finishes under the configuration it started with.
                held.sendall(b"hi")
                self.assertEqual(held.recv(100), b"one")
                held.close()

                self.write(f'[[listen]]\naddress = "127.0.0.1:{a}"\nmessage = "three"\n')
                self.reload(server, "configuration reloaded")
                deadline = time.monotonic() + 5
                while not harness.refused("127.0.0.1", b):
                    self.assertLess(time.monotonic(), deadline, "the removed listener still accepts")
                    time.sleep(0.02)
                self.assertEqual(server.close()[0], 0)


    def test_a_bad_file_is_rejected_and_the_old_configuration_keeps_serving(self):
        port = harness.free_port()
        self.write(f'[[listen]]\naddress = "127.0.0.1:{port}"\nmessage = "kept"\n')
        with harness.Server([BINARY, "--config", self.path]) as server:
            bad_files = [
                "[[listen]\n",                                              # malformed TOML
                f'[[listen]]\naddress = "127.0.0.1:{port}"\ncolour = 1\n',  # unknown key
                f'[[listen]]\naddress = "127.0.0.1:{port}"\nread-size = 0\n',
            ]
            for text in bad_files:
                self.write(text)
                self.reload(server, "reload rejected, the running configuration stays")
                self.assertEqual(harness.exchange("127.0.0.1", port), b"kept")
            # A listener that cannot be opened rejects the whole reload.
            with socket.socket() as squatter:
                squatter.bind(("127.0.0.1", 0))
                squatter.listen()
                taken = squatter.getsockname()[1]
                self.write(f'[[listen]]\naddress = "127.0.0.1:{port}"\nmessage = "changed"\n'
                           f'[[listen]]\naddress = "127.0.0.1:{taken}"\n')
                self.reload(server, "reload rejected")
            self.assertEqual(harness.exchange("127.0.0.1", port), b"kept")
            self.assertEqual(server.close(allowed_errors=[r"reload rejected"])[0], 0)

    def test_sighup_without_a_configuration_file_changes_nothing(self):
        with harness.Server([BINARY, "--listen", "127.0.0.1:0"]) as server:
            host, port = harness.host_port(server.addresses[0])
            self.reload(server, "no configuration file to re-read")
            self.assertEqual(harness.exchange(host, port), b"Hello, client!")
            self.assertEqual(server.close()[0], 0)


def wait_for_file(path, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)


class PidFile(unittest.TestCase):
    def test_written_once_listening_and_removed_at_exit(self):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "salam.pid")
            with harness.Server([BINARY, "--listen", "127.0.0.1:0", "--pid-file", path]) as server:
                wait_for_file(path)
                with open(path) as f:
                    self.assertEqual(f.read(), f"{server.pid}\n")
                self.assertEqual(os.listdir(directory), ["salam.pid"], "no temporary file is left")
                self.assertEqual(server.close()[0], 0)
            self.assertFalse(os.path.exists(path))

    def test_a_successors_pid_file_is_left_alone(self):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "salam.pid")
            with harness.Server([BINARY, "--listen", "127.0.0.1:0", "--pid-file", path]) as server:
                wait_for_file(path)
                with open(path, "w") as f:
                    f.write("424242\n")  # another process took the file over
                self.assertEqual(server.close()[0], 0)
            with open(path) as f:
                self.assertEqual(f.read(), "424242\n")

    def test_an_unwritable_pid_file_is_a_clear_error(self):
        result = harness.run([BINARY, "--listen", "127.0.0.1:0", "--pid-file",
                              "/nonexistent/dir/salam.pid"], capture_output=True, timeout=30)
        self.assertEqual(result.returncode, 2)
        self.assertIn(b"cannot write the pid file '/nonexistent/dir/salam.pid': No such file",
                      result.stderr)


class AcceptGrace(unittest.TestCase):
    """--accept-grace: after SIGTERM the listeners stay open for the grace,
    /ready saying 503, then the stop goes on as without it."""

    def start(self, backend, grace):
        server = harness.Server([BINARY, "--backend", backend, "--listen", "127.0.0.1:0",
                                 "--admin", "127.0.0.1:0", "--read-timeout", "1m",
                                 "--accept-grace", grace])
        admin = harness.host_port(server.wait_for_log(ADMIN).group(1))
        return server, admin

    def test_serves_through_the_grace_then_closes_and_drains(self):
        # The grace is long enough for the checks made in it on a loaded
        # machine (each takes milliseconds; 5 s allows for stalls); the one
        # timing asserted is a lower bound, which no load can break.
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                server, admin = self.start(backend, "5s")
                with server:
                    host, port = harness.host_port(server.addresses[0])
                    held = socket.create_connection((host, port), timeout=10)
                    server.wait_for_count(r" connected$", 1)
                    signalled = time.monotonic()
                    server.process.send_signal(signal.SIGTERM)
                    server.wait_for_log(r"Terminated: still accepting for 5000 ms, then stopping")
                    self.assertEqual(admin_get(admin, "/ready")[0], 503)
                    for _ in range(5):
                        self.assertEqual(harness.exchange(host, port), b"Hello, client!")
                    server.wait_for_log(r"Terminated: stopping; connections have 10000 ms to finish",
                                        timeout=15)
                    self.assertGreaterEqual(time.monotonic() - signalled, 5.0)
                    harness.wait_until(lambda: harness.refused(host, port), 5, "the listener closed")
                    held.sendall(b"hi")
                    self.assertEqual(held.recv(100), b"Hello, client!")
                    held.close()
                    self.assertEqual(server.process.wait(10), 0)
                    self.assertEqual(server.close()[0], 0)

    def test_a_second_signal_ends_the_grace_and_the_drain_at_once(self):
        server, _ = self.start("io_uring", "1m")
        with server:
            host, port = harness.host_port(server.addresses[0])
            held = socket.create_connection((host, port), timeout=10)
            server.wait_for_count(r" connected$", 1)
            server.process.send_signal(signal.SIGTERM)
            server.wait_for_log(r"still accepting for 60000 ms")
            # A stop under way takes no reload.
            server.process.send_signal(signal.SIGHUP)
            server.wait_for_log(r"Hangup: ignored, the server is stopping")
            started = time.monotonic()
            server.process.send_signal(signal.SIGINT)
            self.assertEqual(server.process.wait(10), 0)
            self.assertLess(time.monotonic() - started, 5)
            log = server.log()
            self.assertIn("second signal: closing all connections now", log)
            self.assertIn("stopping; connections have 0 ms to finish", log)
            self.assertEqual(held.recv(100), b"")
            held.close()
            server.close()

    def test_a_reload_changes_the_grace_and_the_drain_of_the_next_stop(self):
        with tempfile.TemporaryDirectory() as directory:
            config = os.path.join(directory, "salam.toml")
            address = f"127.0.0.1:{harness.free_port()}"
            with open(config, "w") as f:
                f.write(f'accept-grace = "1m"\n[[listen]]\naddress = "{address}"\n')
            with harness.Server([BINARY, "--config", config]) as server:
                with open(config, "w") as f:
                    f.write(f'accept-grace = "200ms"\ndrain-timeout = "2s"\n'
                            f'[[listen]]\naddress = "{address}"\n')
                server.process.send_signal(signal.SIGHUP)
                server.wait_for_log(r"configuration reloaded")
                server.process.send_signal(signal.SIGTERM)
                self.assertEqual(server.process.wait(10), 0)
                log = server.log()
                self.assertIn("still accepting for 200 ms, then stopping", log)
                self.assertIn("stopping; connections have 2000 ms to finish", log)
                self.assertNotIn("next start", log)
                server.close()


class ServiceManager(unittest.TestCase):
    """sd_notify, as systemd sees it: a datagram socket named by NOTIFY_SOCKET."""

    def receive(self, sock, timeout=10):
        sock.settimeout(timeout)
        return sock.recv(4096).decode()

    def receive_fds(self, sock, timeout=10):
        """A message and the descriptors it carries (SCM_RIGHTS)."""
        sock.settimeout(timeout)
        message, fds, _, _ = socket.recv_fds(sock, 4096, 16)
        return message.decode(), fds

    def test_ready_reloading_and_stopping(self):
        with tempfile.TemporaryDirectory() as directory:
            notify_path = os.path.join(directory, "notify")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(notify_path)
            config = os.path.join(directory, "salam.toml")
            with open(config, "w") as f:
                f.write('[[listen]]\naddress = "127.0.0.1:0"\n')
            with sock, harness.Server([BINARY, "--config", config, "--drain-timeout", "3s",
                                       "--accept-grace", "1s"],
                                      env={"NOTIFY_SOCKET": notify_path}) as server:
                ready = self.receive(sock)
                self.assertEqual(ready, "READY=1\nSTATUS=serving 1 listener(s)")
                # Ready means serving: a client is answered at once.
                host, port = harness.host_port(server.addresses[0])
                self.assertEqual(harness.exchange(host, port), b"Hello, client!")
                # The listening socket goes into systemd's store, so that a
                # restart finds it open (one socket per shard, a group).
                message, fds = self.receive_fds(sock)
                self.assertEqual(message, f"FDSTORE=1\nFDNAME={host}_{port}")
                self.assertGreaterEqual(len(fds), 1)
                for fd in fds:
                    with socket.socket(fileno=fd) as stored:
                        self.assertEqual(stored.getsockname(), (host, port))
                        self.assertEqual(stored.getsockopt(socket.SOL_SOCKET,
                                                           socket.SO_ACCEPTCONN), 1)

                server.process.send_signal(signal.SIGHUP)
                self.assertRegex(self.receive(sock),
                                 r"^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=reloading$")
                self.assertEqual(self.receive(sock),
                                 "READY=1\nSTATUS=reloaded: serving 1 listener(s)")

                # A reload that moves the listener: systemd lets go of the
                # old socket (or it would keep its port bound) and stores
                # the new one.
                moved = harness.free_port()
                with open(config, "w") as f:
                    f.write(f'[[listen]]\naddress = "127.0.0.1:{moved}"\n')
                server.process.send_signal(signal.SIGHUP)
                self.assertTrue(self.receive(sock).startswith("RELOADING=1"))
                self.assertEqual(self.receive(sock), f"FDSTOREREMOVE=1\nFDNAME={host}_{port}")
                message, fds = self.receive_fds(sock)
                self.assertEqual(message, f"FDSTORE=1\nFDNAME=127.0.0.1_{moved}")
                for fd in fds:
                    os.close(fd)
                self.assertEqual(self.receive(sock),
                                 "READY=1\nSTATUS=reloaded: serving 1 listener(s)")

                with open(config, "w") as f:
                    f.write("threads = -1\n")
                server.process.send_signal(signal.SIGHUP)
                self.assertTrue(self.receive(sock).startswith("RELOADING=1"))
                self.assertRegex(self.receive(sock), r"^READY=1\nSTATUS=reload rejected, the "
                                                     r"running configuration stays: .*threads")

                # systemd's stop timeout is extended by the grace, the
                # drain and 5 s.
                server.process.send_signal(signal.SIGTERM)
                self.assertEqual(self.receive(sock),
                                 "STOPPING=1\nEXTEND_TIMEOUT_USEC=9000000\nSTATUS=draining")
                self.assertEqual(server.close(allowed_errors=[r"reload rejected"])[0], 0)


def read(path):
    with open(path) as f:
        return f.read()


class HeldThread:
    """One thread of a process held still, the way a debugger stops a
    thread (PTRACE_SEIZE, then PTRACE_INTERRUPT); the others run on. Let go
    when the block ends."""
    PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT, WALL = 17, 0x4206, 0x4207, 0x40000000

    def __init__(self, pid, name):
        task = f"/proc/{pid}/task"
        found = [tid for tid in os.listdir(task) if read(f"{task}/{tid}/comm").strip() == name]
        assert len(found) == 1, f"threads named {name}: {found}"
        self.tid = int(found[0])
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                                     ctypes.c_void_p]

    def ptrace(self, request):
        if self.libc.ptrace(request, self.tid, None, None) != 0:
            raise OSError(ctypes.get_errno(), f"ptrace({request:#x}, {self.tid})")

    def __enter__(self):
        self.ptrace(self.PTRACE_SEIZE)
        self.ptrace(self.PTRACE_INTERRUPT)
        os.waitpid(self.tid, self.WALL)  # it is stopped
        return self

    def __exit__(self, *exc):
        self.ptrace(self.PTRACE_DETACH)


class Watchdog(unittest.TestCase):
    """WATCHDOG=1 goes out only while every shard turns."""

    def pings(self, sock, seconds):
        """How many WATCHDOG=1 arrive within `seconds`."""
        count = 0
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                count += sock.recv(4096) == b"WATCHDOG=1"
            except socket.timeout:
                break
        return count

    def test_a_wedged_shard_stops_the_pings_and_live_names_it(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), tempfile.TemporaryDirectory() as directory:
                notify_path = os.path.join(directory, "notify")
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.bind(notify_path)
                with sock, harness.Server(
                        [BINARY, "--backend", backend, "--listen", "127.0.0.1:0", "--threads", "2",
                         "--admin", "127.0.0.1:0"],
                        env={"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "400000"}) as server:
                    admin = harness.host_port(server.wait_for_log(ADMIN).group(1))
                    sock.settimeout(10)
                    self.assertTrue(sock.recv(4096).startswith(b"READY=1"))
                    server.wait_for_log(r"systemd watchdog: pinging every 200 ms")
                    # Every 200 ms: 5 a second; tolerance for a noisy machine.
                    self.assertGreaterEqual(self.pings(sock, 1.0), 3)
                    with HeldThread(server.pid, "salam-shard-1"):
                        server.wait_for_log(r"error systemd watchdog: shard 1 has not turned for "
                                            r"\d+ ms; not pinging")
                        # Pings sent before that line were due: the shard had
                        # turned since the one before. None may follow it.
                        sock.setblocking(False)
                        try:
                            while sock.recv(4096):
                                pass
                        except BlockingIOError:
                            pass
                        self.assertEqual(self.pings(sock, 1.0), 0, "a ping with a shard held")
                        # /live waits for 2 s of silence.
                        deadline = time.monotonic() + 10
                        while admin_get(admin, "/live")[0] == 200 and time.monotonic() < deadline:
                            time.sleep(0.1)
                        status, body = admin_get(admin, "/live")
                        self.assertEqual(status, 503)
                        self.assertRegex(body, r"^shard 1 has not turned for \d+ ms\n$")
                    server.wait_for_log(r"every shard turns again; pinging again")
                    self.assertGreaterEqual(self.pings(sock, 1.0), 3)
                    self.assertEqual(admin_get(admin, "/live")[0], 200)
                    self.assertEqual(server.close(allowed_errors=[r"has not turned"])[0], 0)


def admin_get(address, path):
    """(status, body) of a GET of `path` on the admin endpoint."""
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
