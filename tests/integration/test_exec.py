"""The exec service: a program per connection, against the real tcpserver.

Each test starts the real salam with `--service exec -- PROGRAM`, on both
backends, and talks to it with plain sockets. The environment and the byte
stream are compared with those of Debian's tcpserver (ucspi-tcp-ipv6) for
the same client; the bad programs (one that exits at once, ignores SIGTERM,
floods its output, never reads its input, leaves a grandchild holding the
connection) each end their connection with a clear reason while the server
goes on serving, and no zombie is left.

Usage: test_exec.py PATH/TO/salam [unittest options]
"""
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness

BINARY = None
PROGRAMS = None  # a temporary directory of small programs

SCRIPTS = {
    # The environment, sorted, then what the client sent, then a last line.
    "describe": "#!/bin/sh\nenv | LC_ALL=C sort\necho ---\ncat\necho bye\n",
    # The same without reading: for clients that cannot half-close (TLS).
    "environment": "#!/bin/sh\nenv | LC_ALL=C sort\n",
    "fds": ("#!/usr/bin/python3\nimport os\n"
            "for fd in sorted(os.listdir('/proc/self/fd'), key=int):\n"
            "    try:\n        print(fd, os.readlink(f'/proc/self/fd/{fd}'))\n"
            "    except OSError:\n        pass\n"),
    "stderr": "#!/bin/sh\necho 'to the log' >&2\necho 'to the client'\necho 'again' >&2\n",
    "exit3": "#!/bin/sh\nexit 3\n",
    "stubborn": "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 0.1; done\n",
    "sleeper": "#!/bin/sh\nexec sleep 30\n",
    "orphan": "#!/bin/sh\nsleep 37.5 &\necho started\n",
    "limits": "#!/bin/sh\ncat /proc/self/limits\n",
    "whoami": "#!/bin/sh\necho $(id -u) $(id -g) $(id -G)\n",
    "much": "#!/bin/sh\nhead -c 300000 /dev/zero | tr '\\0' a\n",
    "confined": ("#!/bin/sh\ngrep -E '^(NoNewPrivs|Seccomp):' /proc/self/status\n"
                 "unshare --user true 2>/dev/null && echo unshared || echo refused\n"),
    "polite": "#!/bin/sh\ntrap 'echo bye-on-term; exit 0' TERM\nsleep 30 & wait\n",
}


def program(name):
    return os.path.join(PROGRAMS, name)


def start(backend, *args, listen="127.0.0.1:0", env=None):
    return harness.Server([BINARY, "--backend", backend, "--listen", listen, *args], env=env)


def exec_server(backend, name, *flags, listen="127.0.0.1:0"):
    return start(backend, "--service", "exec", *flags, "--", program(name), listen=listen)


def talk(host, port, data=b"", family=socket.AF_INET, timeout=15):
    """Connects, sends `data`, shuts down writing, reads to end of file."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        local_port = s.getsockname()[1]
        if data:
            s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks), local_port


def normalized(stream, server_port, client_port):
    """The byte stream with the two ports that differ between runs named."""
    text = stream.decode()
    text = re.sub(rf"PORT={server_port}\n", "PORT=<server>\n", text)
    text = re.sub(rf"REMOTEPORT={client_port}\n", "REMOTEPORT=<client>\n", text)
    # Neither asks DNS for the remote name (-H); the local name tcpserver
    # looks up by default salam never looks up.
    text = re.sub(r"TCP6?LOCALHOST=.*\n", "", text)
    return re.sub(r"PWD=.*\n", "", text)  # the shell's own


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def state_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def spawner_of(server):
    for child in children_of(server.pid):
        with open(f"/proc/{child}/comm") as f:
            if f.read().strip() == "salam-spawner":
                return child
    raise AssertionError("no spawner process")


def zombies(server):
    """Zombies among the children of salam and of its spawner."""
    pids = children_of(server.pid) + children_of(spawner_of(server))
    return [pid for pid in pids if state_of(pid) == "Z"]


def processes_with(argument):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if argument.encode() in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            pass
    return found


def wait_until(condition, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class ExecTest(unittest.TestCase):
    def test_environment_and_stream_match_tcpserver(self):
        """The same client gets the same bytes from tcpserver and from salam."""
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            port = harness.free_port()
            tcpserver = harness.Peer(["env", "-i", "tcpserver", "-HR", "-c", "5", host, str(port),
                                      program("describe")], stderr=subprocess.DEVNULL)
            with tcpserver:
                self.assertTrue(wait_until(lambda: not harness.refused(host, port), 5))
                theirs, their_client = talk(host, port, b"hello\n", family)
            for backend in harness.BACKENDS:
                with self.subTest(backend=backend, host=host):
                    listen = f"[{host}]:0" if family == socket.AF_INET6 else f"{host}:0"
                    with exec_server(backend, "describe", listen=listen) as server:
                        server_port = harness.host_port(server.addresses[0])[1]
                        ours, our_client = talk(host, server_port, b"hello\n", family)
                        self.assertEqual(normalized(ours, server_port, our_client),
                                         normalized(theirs, port, their_client))
                        self.assertIn(b"PROTO=TCP", ours)
                        self.assertTrue(ours.endswith(b"---\nhello\nbye\n"), ours)
                        server.wait_for_log(r"closed: done \(exit status 0\), 6 bytes in")
                        server.close()

    def test_a_program_waits_as_long_as_its_client(self):
        """No deadline but the configured ones: a client that takes its time
        still gets the program's answer."""
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), exec_server(backend, "describe") as server:
                with socket.create_connection(harness.host_port(server.addresses[0]),
                                              timeout=15) as s:
                    time.sleep(2.5)  # past the supervisor's 1 s ticks
                    s.sendall(b"late\n")
                    s.shutdown(socket.SHUT_WR)
                    chunks = []
                    while chunk := s.recv(65536):
                        chunks.append(chunk)
                self.assertTrue(b"".join(chunks).endswith(b"---\nlate\nbye\n"))
                server.wait_for_log(r"closed: done \(exit status 0\)")
                server.close()

    def test_only_stdio_is_open_in_the_child(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), exec_server(backend, "fds") as server:
                out, _ = talk(*harness.host_port(server.addresses[0]))
                lines = dict(line.split(" ", 1) for line in out.decode().splitlines())
                self.assertEqual(lines["0"], lines["1"])
                self.assertTrue(lines["0"].startswith("socket:"), lines)
                self.assertTrue(lines["2"].startswith("socket:"), lines)
                self.assertNotEqual(lines["0"], lines["2"])
                # Besides 0, 1 and 2, only the directory the listing itself opened.
                others = {fd: target for fd, target in lines.items() if fd not in "012"}
                self.assertTrue(all(re.fullmatch(r"/proc/\d+/fd", t) for t in others.values()),
                                lines)
                server.close()

    def test_stderr_goes_to_the_log_not_the_client(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), exec_server(backend, "stderr") as server:
                out, client_port = talk(*harness.host_port(server.addresses[0]))
                self.assertEqual(out, b"to the client\n")
                server.wait_for_log(rf"127\.0\.0\.1:\d+ client 127\.0\.0\.1:{client_port} "
                                    r"pid \d+: to the log$")
                server.wait_for_log(rf"client 127\.0\.0\.1:{client_port} pid \d+: again$")
                server.close()

    def test_bad_programs_end_their_connection_only(self):
        cases = [
            # name, flags, what the client does, the record's reason
            ("exit3", [], "talk", r"done \(exit status 3\)"),
            ("stubborn", ["--exec-timeout", "500ms"], "talk", r"exec_timeout"),
            ("sleeper", ["--idle-timeout", "1s"], "flood", r"timeout_idle \(the program read "
                                                           r"none of its input\)"),
            ("much", ["--write-timeout", "1s", "--send-buffer", "4096"], "no-read",
             r"timeout_write"),
            ("orphan", [], "talk", r"done \(exit status 0\)"),
        ]
        for backend in harness.BACKENDS:
            for name, flags, client, reason in cases:
                with self.subTest(backend=backend, program=name):
                    with exec_server(backend, name, *flags) as server:
                        host, port = harness.host_port(server.addresses[0])
                        started = time.monotonic()
                        if client == "talk":
                            out, _ = talk(host, port)
                            if name == "orphan":
                                self.assertEqual(out, b"started\n")
                        elif client == "flood":
                            self.flood(host, port, server)
                        else:
                            self.connect_without_reading(host, port, server)
                        server.wait_for_log(rf"closed: {reason}", timeout=15)
                        self.assertLess(time.monotonic() - started, 10)
                        # The server goes on serving.
                        if name != "sleeper":
                            talk(host, port)
                        self.assertTrue(wait_until(lambda: not zombies(server)), zombies(server))
                        if name == "orphan":
                            # The grandchild left holding the connection went too.
                            self.assertTrue(wait_until(lambda: not processes_with("37.5")))
                        server.close()

    def flood(self, host, port, server):
        """Sends until the program's input and the kernel's buffers are
        full, then waits for the server's end: end of file, or a reset."""
        with socket.create_connection((host, port), timeout=15) as s:
            s.setblocking(False)
            block = b"x" * 65536
            end = time.monotonic() + 10
            while time.monotonic() < end:
                try:
                    s.send(block)
                except BlockingIOError:
                    break
                except (BrokenPipeError, ConnectionResetError):
                    return
            server.wait_for_log(r"closed: timeout_idle", timeout=15)
            s.settimeout(15)
            try:
                self.assertEqual(s.recv(100), b"")
            except ConnectionResetError:
                pass

    def connect_without_reading(self, host, port, server):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((host, port))
        server.wait_for_log(r"closed: timeout_write", timeout=15)
        s.close()

    def test_many_runs_leave_no_zombie(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), exec_server(backend, "exit3") as server:
                host, port = harness.host_port(server.addresses[0])
                threads = [threading.Thread(target=talk, args=(host, port)) for _ in range(40)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(30)
                server.wait_for_count(r"closed: done \(exit status 3\)", 40, timeout=30)
                self.assertTrue(wait_until(lambda: not zombies(server)), zombies(server))
                server.close()

    def test_limits(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                with exec_server(backend, "limits", "--exec-rlimit-nofile", "77",
                                 "--exec-rlimit-as", "256M", "--exec-rlimit-cpu", "5",
                                 "--exec-rlimit-nproc", "300") as server:
                    out, _ = talk(*harness.host_port(server.addresses[0]))
                    limits = {line[:26].strip(): line[26:].split()[:2]
                              for line in out.decode().splitlines()[1:]}
                    self.assertEqual(limits["Max open files"], ["77", "77"])
                    self.assertEqual(limits["Max address space"], [str(256 << 20)] * 2)
                    self.assertEqual(limits["Max cpu time"], ["5", "5"])
                    self.assertEqual(limits["Max processes"], ["300", "300"])
                    server.close()
                with exec_server(backend, "sleeper", "--exec-max-children", "2") as server:
                    host, port = harness.host_port(server.addresses[0])
                    held = [socket.create_connection((host, port)) for _ in range(2)]
                    server.wait_for_count(r"connected", 2)
                    out, _ = talk(host, port)
                    self.assertEqual(out, b"")
                    server.wait_for_log(r"closed: limit_children")
                    for s in held:
                        s.close()
                    server.close()

    @unittest.skipUnless(os.geteuid() == 0, "running a program as another user needs root")
    def test_exec_user_and_group(self):
        import grp
        import pwd
        nobody = pwd.getpwnam("nobody")
        nogroup = grp.getgrnam("nogroup")
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                with exec_server(backend, "whoami", "--exec-user", "nobody",
                                 "--exec-group", "nogroup") as server:
                    out, _ = talk(*harness.host_port(server.addresses[0]))
                    self.assertEqual(out.decode().split(),
                                     [str(nobody.pw_uid), str(nogroup.gr_gid),
                                      str(nogroup.gr_gid)])
                    server.close()

    def test_exec_sandbox_confines_the_program_only_when_asked(self):
        for backend in harness.BACKENDS:
            for flags, expected in (([], "NoNewPrivs:\t0\nSeccomp:\t0\nunshared\n"),
                                    (["--exec-sandbox"],
                                     "NoNewPrivs:\t1\nSeccomp:\t2\nrefused\n")):
                with self.subTest(backend=backend, flags=flags):
                    with exec_server(backend, "confined", *flags) as server:
                        out, _ = talk(*harness.host_port(server.addresses[0]))
                        self.assertEqual(out.decode(), expected)
                        server.close()

    @unittest.skipUnless(os.geteuid() == 0, "dropping privileges needs root")
    def test_the_spawner_is_no_way_back_to_root(self):
        import pwd
        nobody, daemon = pwd.getpwnam("nobody"), pwd.getpwnam("daemon")
        directory = tempfile.mkdtemp(prefix="salam-exec-drop-")
        os.chmod(directory, 0o755)
        try:
            # salam as nobody: the spawner and its programs are nobody too.
            with exec_server("epoll", "whoami", "--user", "nobody") as server:
                out, _ = talk(*harness.host_port(server.addresses[0]))
                self.assertEqual(out.decode().split()[0], str(nobody.pw_uid))
                with open(f"/proc/{spawner_of(server)}/status") as f:
                    uids = re.search(r"^Uid:\s+(.*)$", f.read(), re.M).group(1).split()
                self.assertEqual(uids, [str(nobody.pw_uid)] * 4)
                server.close()
            # With exec-user, the spawner stays root but runs programs only
            # as the users the configuration at start named.
            config = os.path.join(directory, "salam.toml")
            listener = ('[[listen]]\naddress = "127.0.0.1:0"\nservice = "exec"\n'
                        f'exec = ["{program("whoami")}"]\n')
            with open(config, "w") as f:
                f.write(f'user = "nobody"\n{listener}exec-user = "daemon"\n')
            with harness.Server([BINARY, "--config", config]) as server:
                host, port = harness.host_port(server.addresses[0])
                out, _ = talk(host, port)
                self.assertEqual(out.decode().split()[0], str(daemon.pw_uid))
                with open(config, "w") as f:
                    f.write(f'user = "nobody"\n{listener}exec-user = "root"\n')
                server.process.send_signal(signal.SIGHUP)
                server.wait_for_log(r"configuration reloaded from")
                host, port = harness.host_port(server.addresses[0])
                out, _ = talk(host, port)
                self.assertEqual(out, b"")
                server.wait_for_log(r"closed: exec_failed \(EPERM\)")
                server.close()
        finally:
            shutil.rmtree(directory)

    def test_proxy_header_names_the_remote(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                with exec_server(backend, "describe", "--proxy-protocol", "required",
                                 "--proxy-trusted", "127.0.0.1/32") as server:
                    host, port = harness.host_port(server.addresses[0])
                    out, client_port = talk(
                        host, port, b"PROXY TCP4 203.0.113.7 127.0.0.1 4444 80\r\nafter\n")
                    text = out.decode()
                    self.assertIn("TCPREMOTEIP=203.0.113.7\n", text)
                    self.assertIn("TCPREMOTEPORT=4444\n", text)
                    self.assertIn("SALAMPEERIP=127.0.0.1\n", text)
                    self.assertIn(f"SALAMPEERPORT={client_port}\n", text)
                    # What came after the header is the program's input.
                    self.assertTrue(text.endswith("---\nafter\nbye\n"), text)
                    server.close()

    def test_tls_listener_describes_the_session(self):
        directory = tempfile.mkdtemp(prefix="salam-exec-tls-")
        try:
            key, cert = os.path.join(directory, "k.pem"), os.path.join(directory, "c.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                            "-subj", "/CN=exec.test", "-days", "2"],
                           check=True, capture_output=True, timeout=30)
            context = ssl.create_default_context(cafile=cert)
            context.check_hostname = False
            for backend in harness.BACKENDS:
                with self.subTest(backend=backend):
                    with exec_server(backend, "environment", "--tls-cert", cert, "--tls-key",
                                     key) as server:
                        host, port = harness.host_port(server.addresses[0])
                        with socket.create_connection((host, port), timeout=15) as raw:
                            with context.wrap_socket(raw, server_hostname="exec.test") as tls:
                                tls.sendall(b"secret\n")
                                chunks = []
                                while chunk := tls.recv(65536):
                                    chunks.append(chunk)
                        text = b"".join(chunks).decode()
                        self.assertIn("SSL_PROTOCOL=TLSv1.3\n", text)
                        self.assertRegex(text, r"SSL_CIPHER=TLS_\w+\n")
                        self.assertIn("SSL_TLS_SNI=exec.test\n", text)
                        self.assertIn("PROTO=TCP\n", text)
                        server.close()
        finally:
            shutil.rmtree(directory)

    def test_unix_listener(self):
        directory = tempfile.mkdtemp(prefix="salam-exec-unix-")
        try:
            path = os.path.join(directory, "s")
            for backend in harness.BACKENDS:
                with self.subTest(backend=backend):
                    with exec_server(backend, "environment", listen=f"unix:{path}") as server:
                        out = harness.unix_exchange(path, b"")
                        text = out.decode()
                        self.assertIn("PROTO=UNIX\n", text)
                        self.assertIn(f"UNIXLOCALPATH={path}\n", text)
                        self.assertIn(f"UNIXREMOTEPID={os.getpid()}\n", text)
                        self.assertIn(f"UNIXREMOTEEUID={os.geteuid()}\n", text)
                        server.close()
        finally:
            shutil.rmtree(directory)

    def test_drain_sends_sigterm(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                with exec_server(backend, "polite", "--drain-timeout", "10s") as server:
                    host, port = harness.host_port(server.addresses[0])
                    with socket.create_connection((host, port), timeout=15) as s:
                        server.wait_for_log(r"connected")
                        time.sleep(0.3)  # the program has set its trap
                        started = time.monotonic()
                        server.process.send_signal(signal.SIGTERM)
                        self.assertEqual(s.recv(100), b"bye-on-term\n")
                    self.assertEqual(server.process.wait(15), 0)
                    self.assertLess(time.monotonic() - started, 5)
                    self.assertIn("closed: done (exit status 0)", server.log())
                    server.close()

    def test_bad_configuration_is_refused_at_start(self):
        not_executable = os.path.join(PROGRAMS, "plain.txt")
        cases = [
            (["--service", "exec", "--", "/nonexistent/program"], "is not an executable file"),
            (["--service", "exec", "--", not_executable], "is not an executable file"),
            (["--service", "exec", "--", "no-such-program-anywhere"], "no executable"),
            (["--service", "exec"], "needs a program"),
            (["--", "/bin/true"], "add --service exec"),
            (["--service", "exec", "--exec-user", "no-such-user", "--", "/bin/true"],
             "no user no-such-user"),
            (["--service", "exec", "--exec-rlimit-as", "lots", "--", "/bin/true"],
             "exec-rlimit-as"),
            (["--service", "exec", "--exec-max-children", "0", "--", "/bin/true"],
             "exec-max-children"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                done = harness.run([BINARY, "--listen", "127.0.0.1:0", *args],
                                   capture_output=True, timeout=10)
                self.assertEqual(done.returncode, 2, done.stderr)
                self.assertIn(message, done.stderr.decode())

    def test_reload_cannot_add_exec_without_a_spawner(self):
        directory = tempfile.mkdtemp(prefix="salam-exec-reload-")
        try:
            config = os.path.join(directory, "salam.toml")
            with open(config, "w") as f:
                f.write('[[listen]]\naddress = "127.0.0.1:0"\n')
            # Without confinement and without exec, salam starts no spawner
            # (with either, it does: the upgrade needs it too).
            with harness.Server([BINARY, "--config", config, "--sandbox", "off"]) as server:
                with open(config, "w") as f:
                    f.write('[[listen]]\naddress = "127.0.0.1:0"\nservice = "exec"\n'
                            'exec = ["/bin/true"]\n')
                server.process.send_signal(signal.SIGHUP)
                server.wait_for_log(r"needs the spawner process")
                # The running configuration stays.
                reply, _ = harness.tutorial_client(*harness.host_port(server.addresses[0]))
                self.assertEqual(reply, b"Hello, client!")
                server.close(allowed_errors=[r"needs the spawner process"])
        finally:
            shutil.rmtree(directory)


def make_programs():
    directory = tempfile.mkdtemp(prefix="salam-exec-programs-")
    for name, text in SCRIPTS.items():
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    with open(os.path.join(directory, "plain.txt"), "w") as f:
        f.write("not a program\n")
    # exec-user nobody must be able to reach the programs.
    os.chmod(directory, 0o755)
    return directory


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    PROGRAMS = make_programs()
    try:
        unittest.main()
    finally:
        shutil.rmtree(PROGRAMS)
