"""Test harness for black-box tests of salam programs.

Starts the real binary, captures its log, and holds every test to the
reliability gate (../../shared reliability rules, in docs/testing.md): no
unexpected error-level log line, no crash, and descriptors back to their
baseline after the load stops.

Every process a test starts (the server, a balancer, a client tool) runs in
a process group of its own, and is ended with everything it started: a
peer's own stop signal first (nginx's master, on SIGQUIT or SIGTERM, stops
its workers and waits for them), then SIGKILL to whatever is left of its
group.
scripts/test fails the run if anything a test started outlives it.
"""
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

BACKENDS = ("io_uring", "epoll")
# Under a sanitizer (the test presets set its options) memory figures are the
# sanitizer's: ASan keeps freed memory in quarantine, so RSS keeps growing.
# Leaks are then LeakSanitizer's to report, at the server's exit.
SANITIZED = bool(os.environ.get("ASAN_OPTIONS") or os.environ.get("TSAN_OPTIONS"))
LEVEL = re.compile(r"^\S+ (debug|info|warning|error|critical) ", re.M)


def end_group(process, timeout=10.0):
    """Kills what is left of `process`'s process group (its leader and
    anything it started) and reaps the leader. For a process started with
    process_group=0, whose group id is its pid."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the whole group has exited already
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"process {process.pid} survived SIGKILL for {timeout}s")


class Peer:
    """A program a test starts beside salam (HAProxy, nginx, ...), in a
    process group of its own. stop() ends it the way it is meant to be
    ended: `stop_signal` to its main process, which stops its workers and
    exits; after `timeout`, or if anything of its group is left once it has
    exited, the group is killed."""

    def __init__(self, argv, stop_signal=signal.SIGTERM, **popen_kwargs):
        self.argv = argv
        self.stop_signal = stop_signal
        self.process = subprocess.Popen(argv, process_group=0, **popen_kwargs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def pid(self):
        return self.process.pid

    def stop(self, timeout=10.0):
        """Returns the exit status of the main process."""
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        end_group(self.process)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None and not stream.closed:
                stream.close()
        return self.process.returncode


def run(argv, timeout=30, input=None, capture_output=False, check=False, **kwargs):
    """subprocess.run, in a process group of its own: on a timeout the whole
    group is killed, not only the process it started, and nothing the
    program started is left behind once it has exited."""
    if capture_output:
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    with subprocess.Popen(argv, process_group=0, **kwargs) as process:
        try:
            stdout, stderr = process.communicate(input, timeout)
        finally:
            end_group(process)
    if check and process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, argv, stdout, stderr)
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


class Server:
    """A server process with its stderr in a temporary file."""

    def __init__(self, argv, env=None, ready=r"listening on (\S+)", timeout=10.0, preexec_fn=None):
        self.log_file = tempfile.NamedTemporaryFile(prefix="salam-test-", suffix=".log", delete=False)
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log_file,
            env=full_env, preexec_fn=preexec_fn, process_group=0)
        self.addresses = []
        try:
            if ready:
                self.wait_for_log(ready, timeout)
                self.addresses = [m.group(1) for m in re.finditer(ready, self.log())]
        except BaseException:
            self.kill()
            raise
        self.baseline_fds = self.fd_count()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()

    @property
    def pid(self):
        return self.process.pid

    def log(self):
        with open(self.log_file.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_for_log(self, pattern, timeout=10.0):
        """Waits until the log matches `pattern`; returns the match."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log(), re.M)
            if match:
                return match
            if self.process.poll() is not None:
                raise AssertionError(f"server exited ({self.process.returncode}) before logging "
                                     f"{pattern!r}:\n{self.log()}")
            time.sleep(0.02)
        raise AssertionError(f"no log line matched {pattern!r} within {timeout}s:\n{self.log()}")

    def wait_for_count(self, pattern, count, timeout=10.0):
        """Waits until `pattern` matches at least `count` log lines."""
        deadline = time.monotonic() + timeout
        found = 0
        while time.monotonic() < deadline:
            found = len(re.findall(pattern, self.log(), re.M))
            if found >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{found} log lines matched {pattern!r} within {timeout}s, "
                             f"wanted {count}:\n{self.log()[-4000:]}")

    def fd_count(self):

        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except FileNotFoundError:
            return -1

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def assert_fds_return(self, timeout=5.0):
        """The gate: descriptors come back to their baseline after load."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.fd_count() <= self.baseline_fds:
                return
            time.sleep(0.05)
        raise AssertionError(f"descriptors did not return to {self.baseline_fds}: "
                             f"{self.fd_count()} open")

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                end_group(self.process)
                raise AssertionError(f"server did not exit within {timeout}s of {sig!r}")
        return self.process.returncode

    def kill(self):
        """Last-resort cleanup for a test that failed midway; after stop(),
        ends anything the server's process group still holds."""
        end_group(self.process)
        if os.path.exists(self.log_file.name):
            os.unlink(self.log_file.name)
        if not self.process.stdout.closed:
            self.process.stdout.close()

    def close(self, allowed_errors=()):
        """Stops the server and applies the gate to its log."""
        status = self.stop()
        log = self.log()
        self.kill()
        if status < 0 or status >= 128:
            raise AssertionError(f"server died with status {status}:\n{log}")
        for line in log.splitlines():
            level = LEVEL.match(line)
            if level and level.group(1) in ("error", "critical"):
                if not any(re.search(pattern, line) for pattern in allowed_errors):
                    raise AssertionError(f"unexpected error in the server log: {line}")
            if "runtime error" in line or "Sanitizer" in line:
                raise AssertionError(f"sanitizer report:\n{log}")
        return status, log


def wait_until(condition, timeout=15.0, what="condition"):
    """Polls `condition` until it holds; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} did not happen within {timeout}s")


def gone(pid):
    """True once `pid` has exited (a zombie no one reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def host_port(address):
    """("127.0.0.1", 8888) from "127.0.0.1:8888", ("::1", 8888) from "[::1]:8888"."""
    host, port = address.rsplit(":", 1)
    return host.strip("[]"), int(port)


_ports_handed_out = set()


def free_port():
    """A port nothing listens on now (for configuration files that name one).

    Never the same port twice in one test process: the kernel may give a
    closed port out again at once, and a configuration that names two ports
    must get two."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_handed_out:
            _ports_handed_out.add(port)
            return port


def refused(host, port):
    """Whether connecting to host:port is refused (nothing listens)."""
    try:
        socket.create_connection((host, port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


def tutorial_client(host, port, message=b"Hello, server!"):
    """The tutorial's client, as written there: connect, sendall, recv, close.

    Returns (reply, client port)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((host, port))
    client_port = s.getsockname()[1]
    s.sendall(message)
    data = s.recv(1024)
    s.close()
    return data, client_port


def exchange(host, port, message=b"hi", family=socket.AF_INET, timeout=10, half_close=False):
    """Connect, send (then shut down writing if `half_close`), read to end
    of file; returns the bytes read."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        if message:
            s.sendall(message)
        if half_close:
            s.shutdown(socket.SHUT_WR)

        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def unix_exchange(path, message=b"hi", timeout=10):
    """exchange() over a Unix socket at `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(message)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


async def _one_exchange(host, port, message):
    import asyncio
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    writer.write(message)
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return data


def concurrent_exchanges(host, port, count, message=b"hi", timeout=60):
    """`count` exchanges all at once; returns the replies (or exceptions)."""
    import asyncio

    async def run():
        tasks = [_one_exchange(host, port, message) for _ in range(count)]
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout)

    return asyncio.run(run())


def raise_fd_limit():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
