"""Binary upgrade (SIGUSR2): the running salam starts its binary again and
hands it every listening socket (each SO_REUSEPORT group whole) by the
LISTEN_FDS protocol; once the new process is ready the old one drains and
exits 0. A new process that fails, or is not ready in time, is ended and
the old one serves on. Under load, upgrades and reloads lose no
connection."""
import http.client
import json
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
HELLO = b"Hello, client!"


def read_pid(path):
    with open(path) as f:
        return int(f.read())


def stop(pid, timeout=15.0):
    os.kill(pid, signal.SIGTERM)
    harness.wait_until(lambda: harness.gone(pid), timeout, f"process {pid} exiting")


def upgrade(server, pid_file, timeout=15.0):
    """Sends SIGUSR2 to the process the pid file names; returns the new pid
    once the old one is gone."""
    old = read_pid(pid_file)
    os.kill(old, signal.SIGUSR2)
    harness.wait_until(lambda: read_pid(pid_file) != old, timeout, "the new process's pid file")
    harness.wait_until(lambda: harness.gone(old), timeout, f"old process {old} exiting")
    return read_pid(pid_file)


def status(admin):
    connection = http.client.HTTPConnection(*admin, timeout=10)
    try:
        connection.request("GET", "/status.json")
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


class Upgrade(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.TemporaryDirectory(prefix="salam-upgrade-")
        self.pid_file = os.path.join(self.directory.name, "salam.pid")

    def tearDown(self):
        self.directory.cleanup()

    def test_every_socket_is_handed_over_and_the_old_process_exits_0(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                port, admin_port = harness.free_port(), harness.free_port()
                unix_path = os.path.join(self.directory.name, f"{backend}.sock")
                with harness.Server([BINARY, "--backend", backend, "--threads", "2",
                                     "--listen", f"127.0.0.1:{port}", "--listen",
                                     f"unix:{unix_path}", "--admin", f"127.0.0.1:{admin_port}",
                                     "--pid-file", self.pid_file]) as server:
                    old = server.pid
                    self.assertEqual(read_pid(self.pid_file), old)
                    self.assertEqual(harness.exchange("127.0.0.1", port), HELLO)
                    server.process.send_signal(signal.SIGUSR2)
                    self.assertEqual(server.process.wait(15), 0, "the old process exits 0")
                    new = read_pid(self.pid_file)
                    self.assertNotEqual(new, old)
                    log = server.log()
                    # The reuse-port group of two, the Unix socket and the
                    # admin endpoint's: four sockets, none bound again.
                    self.assertIn("handing it 4 listening socket(s)", log)
                    self.assertIn(f"127.0.0.1:{port}: using the 2 listening sockets passed", log)
                    self.assertIn(f"unix:{unix_path}: using the listening socket passed", log)
                    self.assertIn(f"upgrade: process {new} serves now", log)
                    self.assertEqual(harness.exchange("127.0.0.1", port), HELLO)
                    self.assertTrue(os.path.exists(unix_path), "the old process left the file")
                    self.assertEqual(harness.unix_exchange(unix_path), HELLO)
                    self.assertEqual(status(("127.0.0.1", admin_port))["pid"], new)
                    # The new one holds what it should: no descriptor leaked
                    # over, none of the pipe's.
                    targets = []
                    for fd in os.listdir(f"/proc/{new}/fd"):
                        try:
                            if int(fd) > 2:
                                targets.append(os.readlink(f"/proc/{new}/fd/{fd}"))
                        except FileNotFoundError:
                            pass  # closed in the meantime (a connection just served)
                    self.assertEqual(sum(t.startswith("pipe:") for t in targets), 0, targets)
                    stop(new)
                    self.assertFalse(os.path.exists(self.pid_file))
                    self.assertFalse(os.path.exists(unix_path))
                    _, log = server.close()
                    self.assertNotIn(" error ", log)

    def test_a_new_process_that_fails_leaves_the_old_one_serving(self):
        config = os.path.join(self.directory.name, "salam.toml")
        port = harness.free_port()
        with open(config, "w") as f:
            f.write(f'[[listen]]\naddress = "127.0.0.1:{port}"\n')
        with harness.Server([BINARY, "--config", config, "--pid-file", self.pid_file]) as server:
            with open(config, "w") as f:
                f.write("threads = -1\n")
            server.process.send_signal(signal.SIGUSR2)
            server.wait_for_log(r"error upgrade failed: the new process exited with status 2; "
                                r"this one serves on")
            self.assertEqual(read_pid(self.pid_file), server.pid)
            self.assertEqual(harness.exchange("127.0.0.1", port), HELLO)
            self.assertEqual(server.close(allowed_errors=[r"upgrade failed"])[0], 0)

    def test_a_new_process_not_ready_in_time_is_ended(self):
        config = os.path.join(self.directory.name, "salam.toml")
        port, busy_port = harness.free_port(), harness.free_port()
        with open(config, "w") as f:
            f.write(f'[[listen]]\naddress = "127.0.0.1:{port}"\n')
        with socket.socket() as busy, harness.Server(
                [BINARY, "--config", config, "--upgrade-timeout", "500ms"]) as server:
            busy.bind(("127.0.0.1", busy_port))
            busy.listen()
            # The new process waits (up to 3 s) for an address in use.
            with open(config, "a") as f:
                f.write(f'[[listen]]\naddress = "127.0.0.1:{busy_port}"\n')
            server.process.send_signal(signal.SIGUSR2)
            line = server.wait_for_log(r"upgrade: started \S+ as process (\d+)")
            child = int(line.group(1))
            server.wait_for_log(r"error upgrade failed: the new process was not ready within "
                                r"500 ms; this one serves on")
            harness.wait_until(lambda: harness.gone(child), 10, "the new process ending")
            self.assertEqual(harness.exchange("127.0.0.1", port), HELLO)
            # The new process, still starting, may have given up on the
            # address itself before it was ended.
            self.assertEqual(server.close(allowed_errors=[r"upgrade failed",
                                                          rf"cannot listen on 127\.0\.0\.1:"
                                                          rf"{busy_port}"])[0], 0)


class ZeroLoss(unittest.TestCase):
    """The gate in small: clients greet without pause while the server is
    upgraded and reloaded; not one connection may fail."""

    def test_no_connection_is_lost_across_upgrades_and_reloads(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), tempfile.TemporaryDirectory() as directory:
                pid_file = os.path.join(directory, "salam.pid")
                config = os.path.join(directory, "salam.toml")
                port = harness.free_port()
                with open(config, "w") as f:
                    f.write(f'threads = 2\nlog-connections = false\n'
                            f'[[listen]]\naddress = "127.0.0.1:{port}"\nbacklog = 4096\n')
                with harness.Server([BINARY, "--backend", backend, "--config", config,
                                     "--pid-file", pid_file], ready=None) as server:
                    server.wait_for_log(r"listening on")
                    stopping = threading.Event()
                    results = {"ok": 0, "failed": []}
                    lock = threading.Lock()

                    def client():
                        while not stopping.is_set():
                            try:
                                reply = harness.exchange("127.0.0.1", port)
                                failure = None if reply == HELLO else f"reply {reply!r}"
                            except OSError as e:
                                failure = repr(e)
                            with lock:
                                if failure:
                                    results["failed"].append(failure)
                                else:
                                    results["ok"] += 1

                    threads = [threading.Thread(target=client) for _ in range(8)]
                    for t in threads:
                        t.start()
                    try:
                        for round in range(3):
                            for _ in range(3):
                                os.kill(read_pid(pid_file), signal.SIGHUP)
                                time.sleep(0.1)
                            upgrade(server, pid_file)
                            time.sleep(0.2)
                    finally:
                        stopping.set()
                        for t in threads:
                            t.join(30)
                    self.assertEqual(results["failed"], [])
                    self.assertGreater(results["ok"], 100)
                    stop(read_pid(pid_file))
                    server.close()


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
