"""The servers bench/compare measures: how to build each, and how to start
it for a workload, pinned to the server's CPU.

Each peer says which workloads it serves and the command that starts it in
the right mode on a given port. To add a server, add one Peer to
`all_peers()`.
"""
import os
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PEERS = ROOT / "bench" / "peers"
ARTIFACTS = ROOT / "build" / "bench"

# What a server does for each workload of bench/compare.
MODE = {"greet": "greet", "banner": "banner", "burst": "greet", "echo": "echo",
        "bulk": "discard", "hold": "echo"}
EVERY_WORKLOAD = set(MODE)


@dataclass
class Peer:
    name: str
    workloads: set
    # command(mode, port, scratch directory) -> argv
    command: object
    build: object = None
    # A server that cannot choose its port (hello_server: 8888) is started
    # afresh for each run, after the port is free again.
    fixed_port: int = 0
    env: dict = field(default_factory=dict)
    # iperf3 brings its own client; every other peer is driven by salam-bench.
    own_client: bool = False


def newer(source, target):
    return not target.exists() or source.stat().st_mtime > target.stat().st_mtime


def build_c_uring():
    out = ARTIFACTS / "uring_server"
    source = PEERS / "uring_server.c"
    if newer(source, out):
        subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-o", str(out), str(source), "-luring"],
                       check=True)


def build_asio():
    out = ARTIFACTS / "asio_server"
    source = PEERS / "asio_server.cpp"
    if newer(source, out):
        subprocess.run(["g++", "-O2", "-std=c++20", "-Wall", "-Wextra", "-o", str(out),
                        str(source), "-pthread"], check=True)


def build_go():
    out = ARTIFACTS / "go_server"
    source = PEERS / "go_server.go"
    if newer(source, out):
        # Standard library only: no module, nothing to download.
        env = dict(os.environ, GO111MODULE="off", GOCACHE=str(ARTIFACTS / "go-cache"),
                   GOPATH=str(ARTIFACTS / "go-path"))
        subprocess.run(["go", "build", "-o", str(out), str(source)], check=True, env=env)


def nginx_command(mode, port, scratch):
    config = (PEERS / "nginx.conf").read_text()
    config = config.replace("@PREFIX@", str(scratch)).replace("@PORT@", str(port))
    (scratch / "nginx.conf").write_text(config)
    # -e: nginx opens its default error log before reading the config.
    return ["nginx", "-p", str(scratch), "-c", str(scratch / "nginx.conf"),
            "-e", str(scratch / "error.log")]


def salam_peers(salam_cmd, backends, variants=()):
    """salam on each backend: the daemon, or hello_server until it exists."""
    argv = shlex.split(salam_cmd)
    if Path(argv[0]).name == "hello_server":
        # Greet only, always on 127.0.0.1:8888; SALAM_BACKEND picks the backend.
        return [Peer(f"salam/{backend}", {"greet", "burst"}, lambda mode, port, scratch: argv,
                     fixed_port=8888, env={"SALAM_BACKEND": backend})
                for backend in backends]

    def daemon(backend, *extra, quiet=True):
        threads = [] if "--threads" in extra else ["--threads", "1"]
        return lambda mode, port, scratch: [
            *argv, "--listen", f"127.0.0.1:{port}", *threads, "--backend", backend,
            "--service", "greet" if mode == "banner" else mode, "--max-connections", "200000",
            *(["--quiet"] if quiet else []), *(["--greet-first"] if mode == "banner" else []),
            *extra]
    # The default configuration on each backend, and greet with
    # TCP_DEFER_ACCEPT, as the minimal C server runs it. Variants (NAME,
    # FLAGS) run on the first backend with FLAGS and nothing else added:
    # `--salam-variant text=` logs every connection, `quiet=--quiet` does not.
    return [*(Peer(f"salam/{backend}", EVERY_WORKLOAD, daemon(backend)) for backend in backends),
            *(Peer(f"salam/{backend}+defer", {"greet"}, daemon(backend, "--defer-accept"))
              for backend in backends),
            *(Peer(f"salam/{name}", EVERY_WORKLOAD,
                   daemon(backends[0], *shlex.split(flags), quiet=False))
              for name, flags in variants)]



def all_peers(salam_cmd, salam_backends, salam_variants=()):
    return [
        Peer("nginx", {"greet", "banner", "burst"}, nginx_command),
        Peer("python-article", {"greet", "burst"},
             lambda mode, port, scratch: ["python3", str(PEERS / "article_server.py"), str(port)]),
        Peer("asio", EVERY_WORKLOAD,
             lambda mode, port, scratch: [str(ARTIFACTS / "asio_server"), str(port), mode],
             build=build_asio),
        Peer("go", EVERY_WORKLOAD,
             lambda mode, port, scratch: [str(ARTIFACTS / "go_server"), str(port), mode],
             build=build_go),
        # Its connections hold a 16 KiB buffer each: not a contender for hold.
        Peer("c-io_uring", EVERY_WORKLOAD - {"hold"},
             lambda mode, port, scratch: [str(ARTIFACTS / "uring_server"), str(port), mode],
             build=build_c_uring),
        Peer("iperf3", {"bulk"},
             lambda mode, port, scratch: ["iperf3", "--server", "--port", str(port)],
             own_client=True),
        *salam_peers(salam_cmd, salam_backends, salam_variants),
    ]


def port_is_free(port, strict=False):
    """Whether a server can bind `port`. Strict: even one that does not set
    SO_REUSEADDR (the article's), which TIME_WAIT connections of the port
    keep out for a minute."""
    with socket.socket() as probe:
        if not strict:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def accepts_connections(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Server:
    """A running peer: its own process group, pinned with taskset."""

    def __init__(self, peer, mode, port, scratch, cpu):
        self.peer = peer
        self.port = port
        scratch.mkdir(parents=True, exist_ok=True)
        self.log_path = scratch / "server.log"
        deadline = time.monotonic() + 10
        # A closed io_uring listener can linger a moment after its process.
        while not port_is_free(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{peer.name}: port {port} stays busy")
            time.sleep(0.05)
        argv = peer.command(mode, port, scratch)
        if cpu is not None:
            argv = ["taskset", "--cpu-list", str(cpu), *argv]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                cwd=scratch, env=dict(os.environ, **peer.env), start_new_session=True)
        while not accepts_connections(port):
            if self.process.poll() is not None:
                raise RuntimeError(f"{peer.name} exited ({self.process.returncode}) at start:\n"
                                   f"{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{peer.name} does not accept connections on port {port}")
            time.sleep(0.05)
        # Let the probe connection finish before anything is measured.
        time.sleep(0.1)

    @property
    def pid(self):
        return self.process.pid  # taskset execs the server: same process

    def alive(self):
        return self.process.poll() is None

    def log_tail(self, lines=20):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
