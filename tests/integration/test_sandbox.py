"""Confinement of the daemon (docs/security.md), black box: started as root
with --user nobody, salam drops to it (ids, groups, capabilities) once its
listeners are open, and runs under no_new_privs, a seccomp filter and
Landlock; it still serves every service on both backends, reloads (a
listener on a port below 1024 included) and upgrades. From inside (the
SALAM_TEST_PROBE hook of a test build), a forbidden system call kills it
with SIGSYS and a file outside its rules is refused.

Usage: test_sandbox.py PATH/TO/salam [--probes] [unittest options]
(--probes: the binary has the test hooks, SALAM_TEST_HOOKS).
"""
import grp
import os
import pwd
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import unittest

import harness

BINARY = None
PROBES = "--probes" in sys.argv
HELLO = b"Hello, client!"
CAP_NET_BIND_SERVICE = 1 << 10
ROOT = os.geteuid() == 0
NOBODY = pwd.getpwnam("nobody")
# The sanitizer builds confine nothing but ids and no_new_privs (the
# runtime's calls and files are no allowlist's): see docs/security.md.
FILTERED = not harness.SANITIZED
CONFINED = r"system call filter installed" if FILTERED else r"sanitizer build: no system call"


def status_fields(path):
    """/proc/.../status as {"Uid": ["65534", ...], ...}."""
    fields = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return fields


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read())
    except (FileNotFoundError, ValueError):
        return 0


def free_low_port():
    """A port below 1024 that nothing listens on."""
    for port in range(990, 900, -1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise AssertionError("no free port below 1024")


def as_nobody():
    os.setgroups([])
    os.setgid(NOBODY.pw_gid)
    os.setuid(NOBODY.pw_uid)


class Workspace(unittest.TestCase):
    """A directory nobody can read, and write (the pid file, the access log,
    Unix sockets), with a certificate, a quotes file and a configuration."""

    def setUp(self):
        self.directory = tempfile.TemporaryDirectory(prefix="salam-sandbox-")
        self.root = self.directory.name
        os.chmod(self.root, 0o755)
        if ROOT:
            os.chown(self.root, NOBODY.pw_uid, NOBODY.pw_gid)
        self.key, self.cert = self.path("key.pem"), self.path("cert.pem")
        harness.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key, "-out", self.cert,
                     "-days", "30", "-subj", "/CN=localhost"], check=True, capture_output=True)
        os.chmod(self.key, 0o644)
        with open(self.path("quotes"), "w") as f:
            f.write("one quote\n%\nanother\n")
        self.config = self.path("salam.toml")
        self.pid_file = self.path("salam.pid")
        self.ports = {}

    def tearDown(self):
        self.directory.cleanup()

    def path(self, name):
        return os.path.join(self.root, name)

    def write_config(self, backend, extra=""):
        """Every service on a port of its own, TLS and a Unix listener."""
        text = f'backend = "{backend}"\nthreads = 2\npid-file = "{self.pid_file}"\n' \
               f'access-log = "{self.path("access.log")}"\n'
        for service in ("greet", "echo", "discard", "chargen", "daytime", "time", "qotd", "tls"):
            port = self.ports.setdefault(service, harness.free_port())
            text += f'[[listen]]\naddress = "127.0.0.1:{port}"\n'
            text += 'service = "echo"\n' if service == "tls" else f'service = "{service}"\n'
            if service == "qotd":
                text += f'quotes-file = "{self.path("quotes")}"\n'
            if service == "tls":
                text += f'tls-cert = ["{self.cert}"]\ntls-key = ["{self.key}"]\n'
        text += f'[[listen]]\naddress = "unix:{self.path("greet.sock")}"\n' + extra
        with open(self.config, "w") as f:
            f.write(text)

    def start(self, *args, env=None, preexec_fn=None):
        server = harness.Server([BINARY, "--config", self.config, *args], env=env,
                                preexec_fn=preexec_fn)
        try:
            server.wait_for_log(CONFINED)
        except BaseException:
            server.kill()
            raise
        return server

    def serve_everything(self):
        ports = self.ports
        self.assertEqual(harness.exchange("127.0.0.1", ports["greet"]), HELLO)
        self.assertEqual(harness.exchange("127.0.0.1", ports["echo"], b"ping", half_close=True),
                         b"ping")
        self.assertEqual(harness.exchange("127.0.0.1", ports["discard"], b"x" * 1000,
                                          half_close=True), b"")
        with socket.create_connection(("127.0.0.1", ports["chargen"]), timeout=10) as s:
            self.assertEqual(len(s.recv(74, socket.MSG_WAITALL)), 74)
        self.assertRegex(harness.exchange("127.0.0.1", ports["daytime"], b""), rb"\d\d:\d\d:\d\d")
        self.assertEqual(len(harness.exchange("127.0.0.1", ports["time"], b"")), 4)
        self.assertIn(harness.exchange("127.0.0.1", ports["qotd"], b""),
                      (b"one quote\r\n", b"another\r\n"))
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", ports["tls"]), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as client:
                client.sendall(b"over TLS")
                self.assertEqual(client.recv(64), b"over TLS")
        self.assertEqual(harness.unix_exchange(self.path("greet.sock")), HELLO)

    def assert_dropped(self, pid):
        """Every thread: nobody's ids, no_new_privs, the filter; no
        capability but CAP_NET_BIND_SERVICE, which the main thread keeps."""
        main = status_fields(f"/proc/{pid}/status")
        groups = sorted(str(g) for g in os.getgrouplist("nobody", NOBODY.pw_gid))
        self.assertEqual(sorted(main["Groups"]), groups)
        self.assertEqual(int(main["CapEff"][0], 16), CAP_NET_BIND_SERVICE)
        self.assertEqual(int(main["CapBnd"][0], 16), CAP_NET_BIND_SERVICE)
        self.assertEqual(int(main["CapAmb"][0], 16), CAP_NET_BIND_SERVICE)
        tasks = os.listdir(f"/proc/{pid}/task")
        self.assertGreaterEqual(len(tasks), 3, "the main thread and two shards at least")
        for task in tasks:
            fields = status_fields(f"/proc/{pid}/task/{task}/status")
            self.assertEqual(fields["Uid"], [str(NOBODY.pw_uid)] * 4, task)
            self.assertEqual(fields["Gid"], [str(NOBODY.pw_gid)] * 4, task)
            # no_new_privs is a thread's: ThreadSanitizer's runtime starts a
            # thread of its own before main(), which only the filter's
            # TSYNC (off in sanitizer builds) would reach; salam's threads
            # all have a name of their own.
            if harness.SANITIZED and task != str(pid) and fields["Name"] == main["Name"]:
                continue
            self.assertEqual(fields["NoNewPrivs"], ["1"], task)
            self.assertEqual(fields["Seccomp"], ["2" if FILTERED else "0"], task)
            for capabilities in ("CapPrm", "CapEff", "CapInh"):
                self.assertEqual(int(fields[capabilities][0], 16) & ~CAP_NET_BIND_SERVICE, 0,
                                 f"{task} {capabilities}")


@unittest.skipUnless(ROOT, "the privilege drop needs salam started as root")
class Drop(Workspace):
    def test_drops_to_nobody_and_serves_everything_on_both_backends(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                self.write_config(backend)
                with self.start("--user", "nobody") as server:
                    self.assertIn("running as user nobody", server.log())
                    # Made by salam for the user, to be reopened after the drop.
                    self.assertEqual(os.stat(self.path("access.log")).st_uid, NOBODY.pw_uid)
                    self.assert_dropped(server.pid)
                    self.serve_everything()
                    self.assert_dropped(server.pid)  # and the threads started since
                    server.close()

    def test_a_reload_adds_a_low_port_and_a_unix_listener_and_removes_one(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                self.write_config(backend)
                with self.start("--user", "nobody") as server:
                    low = free_low_port()
                    extra = self.path("extra.sock")
                    self.write_config(backend, f'[[listen]]\naddress = "127.0.0.1:{low}"\n'
                                               f'[[listen]]\naddress = "unix:{extra}"\n')
                    os.kill(server.pid, signal.SIGHUP)
                    server.wait_for_log(r"configuration reloaded .*: 11 listener")
                    self.assertEqual(harness.exchange("127.0.0.1", low), HELLO)
                    self.assertEqual(harness.unix_exchange(extra), HELLO)
                    # Rotated: the access log is made again in its directory.
                    os.rename(self.path("access.log"), self.path("access.log.1"))
                    self.write_config(backend)
                    os.kill(server.pid, signal.SIGHUP)
                    server.wait_for_count(r"configuration reloaded .*: 9 listener", 1)
                    harness.wait_until(lambda: harness.refused("127.0.0.1", low), what="low port closed")
                    self.assertFalse(os.path.exists(extra), "the Unix socket's file is removed")
                    self.serve_everything()
                    harness.wait_until(lambda: os.path.exists(self.path("access.log")), what="new log")
                    self.assert_dropped(server.pid)
                    server.close()

    def test_an_upgrade_under_the_filter_serves_on(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                self.write_config(backend)
                with self.start("--user", "nobody") as server:
                    old = server.pid
                    os.kill(old, signal.SIGUSR2)
                    self.assertEqual(server.process.wait(20), 0, "the old process exits 0")
                    new = read_pid(self.pid_file)
                    self.assertNotIn(new, (0, old))
                    log = server.log()
                    self.assertIn(f"upgrade: process {new} serves now", log)
                    # The spawner started the new process, outside the old
                    # one's filter: it creates its own rings (docs/security.md).
                    self.assertIn("by the spawner", log)
                    self.assertNotIn("serving on epoll until the next start", log)
                    after = log[log.index("by the spawner"):]
                    self.assertIn(f"(2 shards, {backend})", after)
                    with open(f"/proc/{new}/status") as f:
                        self.assertIn("Seccomp:\t2" if FILTERED else "Seccomp:\t0", f.read())
                    self.serve_everything()
                    self.assert_dropped(new)
                    os.kill(new, signal.SIGTERM)
                    harness.wait_until(lambda: harness.gone(new), what="the new process exiting")
                    self.assertFalse(os.path.exists(self.pid_file), "removed at exit")
                    server.close()

    def test_a_group_of_its_own(self):
        self.write_config("epoll")
        with self.start("--user", "nobody", "--group", "daemon") as server:
            daemon = grp.getgrnam("daemon").gr_gid
            fields = status_fields(f"/proc/{server.pid}/status")
            self.assertEqual(fields["Uid"], [str(NOBODY.pw_uid)] * 4)
            self.assertEqual(fields["Gid"], [str(daemon)] * 4)
            self.assertEqual(sorted(fields["Groups"]),
                             sorted(str(g) for g in os.getgrouplist("nobody", daemon)))
            server.close()


class Refusals(Workspace):
    def run_salam(self, *args, preexec_fn=None):
        done = harness.run([BINARY, *args], stdin=subprocess.DEVNULL, capture_output=True,
                           preexec_fn=preexec_fn)
        return done.returncode, done.stderr.decode()

    def test_bad_names_and_values_exit_2_naming_them(self):
        self.write_config("epoll")
        for args, message in [
                (["--user", "no-such-user"], "unknown user 'no-such-user'"),
                (["--user", "nobody", "--group", "no-such-group"], "unknown group 'no-such-group'"),
                (["--group", "daemon"], "group needs user"),
                (["--sandbox", "maybe"], "--sandbox: expected on or off, not 'maybe'")]:
            with self.subTest(args=args):
                status, stderr = self.run_salam("--config", self.config, *args)
                self.assertEqual(status, 2, stderr)
                self.assertIn(message, stderr)
        with open(self.config) as f:
            text = f.read()
        with open(self.config, "w") as f:
            f.write('sandbox = "maybe"\n' + text)
        status, stderr = self.run_salam("--check-config", self.config)
        self.assertEqual(status, 2)
        self.assertIn("expected on or off, not 'maybe'", stderr)

    @unittest.skipUnless(ROOT, "needs root to start salam as another user")
    def test_user_when_not_root_is_refused_unless_it_is_the_current_one(self):
        self.write_config("epoll")
        status, stderr = self.run_salam("--config", self.config, "--user", "daemon",
                                        preexec_fn=as_nobody)
        self.assertEqual(status, 2, stderr)
        self.assertIn("user 'daemon': salam must be started as root to change user", stderr)
        with self.start("--user", "nobody", preexec_fn=as_nobody) as server:
            fields = status_fields(f"/proc/{server.pid}/status")
            self.assertEqual(fields["Uid"], [str(NOBODY.pw_uid)] * 4)
            self.assertEqual(fields["Seccomp"], ["2" if FILTERED else "0"])
            self.assertEqual(harness.exchange("127.0.0.1", self.ports["greet"]), HELLO)
            server.close()

    def test_check_config_drops_nothing(self):
        self.write_config("epoll")
        status, stderr = self.run_salam("--check-config", self.config, "--user", "nobody")
        self.assertEqual(status, 0, stderr)

    def test_sandbox_off_keeps_no_new_privs_only(self):
        self.write_config("epoll")
        server = harness.Server([BINARY, "--config", self.config, "--sandbox", "off"])
        with server:
            harness.wait_until(lambda: status_fields(f"/proc/{server.pid}/status")["NoNewPrivs"] == ["1"],
                       what="no_new_privs")
            fields = status_fields(f"/proc/{server.pid}/status")
            self.assertEqual(fields["Seccomp"], ["0"])
            self.assertNotIn("system call filter installed", server.log())
            self.assertEqual(harness.exchange("127.0.0.1", self.ports["greet"]), HELLO)
            server.close()


@unittest.skipUnless(PROBES, "the binary has no test hooks (SALAM_TEST_HOOKS)")
@unittest.skipUnless(FILTERED, "sanitizer builds install no filter and no Landlock")
class Probes(Workspace):
    """What the confined process itself cannot do."""

    def probe(self, value, *args):
        self.write_config("epoll")
        return harness.Server([BINARY, "--config", self.config, *args],
                              env={"SALAM_TEST_PROBE": value}, ready=None)

    def test_a_forbidden_system_call_kills_the_process_with_sigsys(self):
        with self.probe("syscall") as server:
            self.assertEqual(server.process.wait(15), -signal.SIGSYS, server.log())
            self.assertIn("test probe: ptrace", server.log())
            self.assertNotIn("ptrace: succeeded", server.log())

    def test_a_new_io_uring_is_refused(self):
        with self.probe("io_uring") as server:
            server.wait_for_log(r"test probe: io_uring_setup: Operation not permitted")
            self.assertEqual(harness.exchange("127.0.0.1", self.ports["greet"]), HELLO)
            server.close()

    def test_a_file_outside_the_rules_is_refused_even_to_root(self):
        with self.probe("open:/etc/shadow") as server:
            server.wait_for_log(r"test probe: open /etc/shadow: Permission denied")
            server.close()
        # The same probe without the sandbox: the refusal was Landlock's.
        with self.probe("open:/etc/shadow", "--sandbox", "off") as server:
            server.wait_for_log(r"test probe: open /etc/shadow: "
                                + ("succeeded" if ROOT else "Permission denied"))
            server.close()


if __name__ == "__main__":
    BINARY = sys.argv[1]
    unittest.main(argv=[sys.argv[0]] + [a for a in sys.argv[2:] if a != "--probes"])
