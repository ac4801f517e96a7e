"""salam.service's SystemCallFilter= allows every system call salam makes.

systemd cannot run as PID 1 where the tests run, so the filter is checked
the other way round: salam runs under strace, through what a service does
over its life (start under a NOTIFY_SOCKET with the watchdog on, serve
greet, echo over TLS and daytime on a Unix socket, answer the admin
endpoint, reload on SIGHUP, upgrade itself on SIGUSR2, drain on SIGTERM), on
both backends, and every call it made must be in the set the unit's filter
lines leave allowed, as `systemd-analyze syscall-filter` defines the groups.
A call outside it would be refused with EPERM under the unit
(SystemCallErrorNumber=EPERM). Operations submitted through io_uring are
not system calls and seccomp does not see them.

Arguments: the salam binary (a build without sanitizers: their runtimes make
calls of their own).
"""
import os
import pathlib
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "integration"))
import harness  # noqa: E402

SALAM = None
UNIT = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "salam.service.in"


def syscall_groups():
    """{"@group": ["name", "@other", ...]} from systemd-analyze."""
    text = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True,
                          timeout=60, check=True).stdout
    groups, current = {}, None
    for line in text.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(items, groups):
    names = set()
    for item in items:
        names |= expand(groups[item], groups) if item.startswith("@") else {item}
    return names


def allowed_by_unit(groups):
    """The allow-list line, less every deny-list (~) line after it."""
    lines = re.findall(r"^SystemCallFilter=(.*)$", UNIT.read_text(), re.M)
    allow = [line.split() for line in lines if not line.startswith("~")]
    deny = [line[1:].split() for line in lines if line.startswith("~")]
    assert len(allow) == 1 and deny, lines
    allowed = expand(allow[0], groups)
    for items in deny:
        allowed -= expand(items, groups)
    return allowed


def traced_calls(summary):
    """The names in strace -c's table."""
    names = set()
    for line in summary.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            names.add(fields[-1])
    return names


class SyscallFilter(unittest.TestCase):
    def setUp(self):
        self.groups = syscall_groups()
        self.allowed = allowed_by_unit(self.groups)
        self.assertIn("io_uring_enter", self.allowed)
        self.assertNotIn("setrlimit", self.allowed)

    def test_every_call_salam_makes_is_allowed(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                calls = self.trace(backend)
                self.assertIn("accept4" if backend == "epoll" else "io_uring_enter", calls)
                self.assertEqual(sorted(calls - self.allowed), [],
                                 f"calls the unit's filter refuses ({backend})")

    def trace(self, backend):
        with tempfile.TemporaryDirectory(prefix="salam-syscalls-") as directory:
            root = pathlib.Path(directory)
            key, cert = root / "key.pem", root / "cert.pem"
            harness.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out",
                         str(cert), "-days", "2", "-subj", "/CN=localhost"],
                        check=True, capture_output=True)
            # A fixed admin port: a port-0 listener is not matched across the upgrade.
            greet, tls, admin = harness.free_port(), harness.free_port(), harness.free_port()
            config = root / "salam.toml"
            config.write_text(f'''threads = 2
backend = "{backend}"
admin = "127.0.0.1:{admin}"
access-log = "{root}/access.log"
pid-file = "{root}/salam.pid"
[[listen]]
address = "127.0.0.1:{greet}"
[[listen]]
address = "127.0.0.1:{tls}"
service = "echo"
tls-cert = ["{cert}"]
tls-key = ["{key}"]
[[listen]]
address = "unix:{root}/daytime.sock"
service = "daytime"
''')
            # Read as systemd reads it: a datagram queue left full would block
            # the sender (sd_notify's socket is a blocking one).
            notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            notify.bind(str(root / "notify"))
            notify.settimeout(0.2)
            reading = threading.Event()
            reading.set()

            def read_notifications():
                while reading.is_set():
                    try:
                        notify.recv(4096)
                    except (TimeoutError, OSError):
                        pass

            reader = threading.Thread(target=read_notifications, daemon=True)
            reader.start()
            summary = root / "strace.txt"
            env = {"NOTIFY_SOCKET": str(root / "notify"), "WATCHDOG_USEC": "1000000"}
            server = harness.Server(["strace", "-f", "-qq", "-c", "-o", str(summary),
                                     SALAM, "--config", str(config)], env=env)
            try:
                self.exercise(server, root, greet, tls, admin)
            finally:
                server.kill()
                reading.clear()
                reader.join()
                notify.close()
            return traced_calls(summary.read_text())

    def exercise(self, server, root, greet, tls, admin):
        pid_file = root / "salam.pid"
        pid = int(pid_file.read_text())

        def serve_everything():
            self.assertEqual(harness.exchange("127.0.0.1", greet), b"Hello, client!")
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            with socket.create_connection(("127.0.0.1", tls), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname="localhost") as client:
                    client.sendall(b"ping")
                    self.assertEqual(client.recv(16), b"ping")
            with socket.socket(socket.AF_UNIX) as client:  # daytime speaks first, then closes
                client.settimeout(10)
                client.connect(str(root / "daytime.sock"))
                self.assertRegex(client.makefile("rb").read(), rb"\d\d:\d\d:\d\d")
            url = f"http://127.0.0.1:{admin}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                self.assertIn(b"salam_", response.read())

        serve_everything()
        os.kill(pid, signal.SIGHUP)
        server.wait_for_log(r"configuration reloaded")
        os.kill(pid, signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while True:  # the new process names itself in the pid file once ready
            text = pid_file.read_text() if pid_file.exists() else ""
            if text.strip() and int(text) != pid:
                break
            self.assertLess(time.monotonic(), deadline, "no upgrade")
            time.sleep(0.05)
        new_pid = int(pid_file.read_text())
        serve_everything()
        os.kill(new_pid, signal.SIGTERM)
        server.process.wait(60)  # strace ends with the last process it traces


def main():
    global SALAM
    SALAM = sys.argv[1]
    for tool in ("strace", "systemd-analyze", "openssl"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            sys.exit(f"{tool} is a test dependency (scripts/install-deps --test)")
    unittest.main(argv=sys.argv[:1])


if __name__ == "__main__":
    main()
