"""The servers bench/compare measures: how to build each, and how to start
it for a workload, pinned to the server's CPU.

Each peer says which workloads it serves and the command that starts it in
the right mode on a given port. To add a server, add one Peer to
`all_peers()`.

TLS workloads run salam, nginx and HAProxy, all serving one certificate
(make_certificate()) with the same settings as far as each allows. A proxy
that cannot do a workload's work by itself (nginx stream cannot discard,
HAProxy in TCP mode cannot answer) relays the plaintext to an upstream: a
plain salam on the same CPU, started with it, whose CPU is reported apart.
"""
import os
import re
import resource
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
        "bulk": "discard", "hold": "echo",
        # Handshakes need a server that speaks or closes right after its
        # tickets (the client's read for the ticket ends there).
        "tls-handshake": "tls-handshake", "tls-resume": "tls-handshake",
        "tls-greet": "tls-greet", "tls-bulk": "tls-discard", "tls-hold": "tls-echo"}
TLS_WORKLOADS = {name for name in MODE if name.startswith("tls-")}
EVERY_WORKLOAD = set(MODE) - TLS_WORKLOADS
# The settings every TLS peer is given, as far as it allows.
TLS_CIPHERSUITE = "TLS_AES_128_GCM_SHA256"
TLS_GROUP = "X25519"


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
    # upstream(mode) -> the command(port) of the server this peer relays to
    # in that mode (a proxy that cannot do the work itself), or None.
    upstream: object = None


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


def fill(template, scratch, name, **values):
    """Writes PEERS/template with each @KEY@ replaced into scratch/name."""
    text = (PEERS / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key.upper()}@", str(value))
    (scratch / name).write_text(text)
    return scratch / name


def descriptor_limit():
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def nginx_command(tls_cert):
    def command(mode, port, scratch, upstream=None):
        if mode.startswith("tls-"):
            body = (f"proxy_pass 127.0.0.1:{upstream};" if upstream
                    else 'return "Hello, client!";')
            config = fill("nginx-tls.conf", scratch, "nginx.conf", prefix=scratch, port=port,
                          cert=tls_cert, body=body, connections=descriptor_limit())
        else:
            config = fill("nginx.conf", scratch, "nginx.conf", prefix=scratch, port=port)
        # -e: nginx opens its default error log before reading the config.
        return ["nginx", "-p", str(scratch), "-c", str(config), "-e", str(scratch / "error.log")]
    return command


def haproxy_command(tls_cert):
    def command(mode, port, scratch, upstream=None):
        # Handshakes: close once the handshake is done; the upstream is
        # never reached (port 9, discard, only to make a valid backend).
        rules = "tcp-request session reject" if mode == "tls-handshake" else ""
        config = fill("haproxy.cfg", scratch, "haproxy.cfg", port=port, cert=tls_cert,
                      upstream=upstream or 9, rules=rules,
                      maxconn=(descriptor_limit() - 100) // 2)
        return ["haproxy", "-db", "-f", str(config)]
    return command


def plain_upstream(salam_cmd, modes):
    """upstream(mode) for a proxy that relays these TLS modes' plaintext: to
    salam, plain, one thread, serving what the mode asks for. Other modes
    the proxy answers by itself."""
    services = {"tls-greet": "greet", "tls-discard": "discard", "tls-echo": "echo"}

    def upstream(mode):
        if mode not in modes:
            return None
        return lambda port: [*shlex.split(salam_cmd), "--listen", f"127.0.0.1:{port}",
                             "--threads", "1", "--service", services[mode],
                             "--max-connections", "200000", "--quiet"]
    return upstream


def make_certificate(directory):
    """The one certificate every TLS peer serves: ECDSA P-256, for localhost,
    self-signed; certificate and key in one PEM file (what salam's
    --tls-cert, nginx and HAProxy's crt all take)."""
    directory = Path(directory)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
                    "-days", "30", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost"],
                   cwd=directory, check=True, capture_output=True, timeout=60)
    combined = directory / "localhost.pem"
    combined.write_text((directory / "cert.pem").read_text() + (directory / "key.pem").read_text())
    return combined


def probe_tls(port, timeout=10):
    """What one TLS 1.3 handshake with the server looks like from openssl
    s_client: the group, the cipher suite, how many session tickets it
    sends, and whether it ends with close_notify. For a server that speaks
    or closes after the handshake (the tls-handshake mode)."""
    try:
        done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3",
                               "-servername", "localhost", "-msg", "-ign_eof"],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = (done.stdout + done.stderr).decode(errors="replace")
    group = re.search(r"Server Temp Key: (\S+?),", out)
    cipher = re.search(r"Cipher is (\S+)", out)
    return {"group": group.group(1) if group else None,
            "cipher": cipher.group(1) if cipher else None,
            "tickets": len(re.findall(r"<<< TLS 1.3, Handshake \[[^]]*\], NewSessionTicket", out)),
            "close_notify": bool(re.search(r"<<< TLS 1.3, Alert .*close_notify", out))}


def is_daemon(salam_cmd):
    return Path(shlex.split(salam_cmd)[0]).name != "hello_server"


# What salam runs for each mode: its service, and --greet-first for a
# banner (and for handshakes, where it speaks right after its tickets).
SALAM_MODES = {"banner": ("greet", ["--greet-first"]),
               "tls-handshake": ("greet", ["--greet-first"]), "tls-greet": ("greet", []),
               "tls-discard": ("discard", []), "tls-echo": ("echo", [])}


def salam_peers(salam_cmd, backends, variants=(), tls_cert=None, others=()):
    """salam on each backend: the daemon, or hello_server until it exists."""
    argv = shlex.split(salam_cmd)
    if not is_daemon(salam_cmd):
        # Greet only, always on 127.0.0.1:8888; SALAM_BACKEND picks the backend.
        return [Peer(f"salam/{backend}", {"greet", "burst"}, lambda mode, port, scratch: argv,
                     fixed_port=8888, env={"SALAM_BACKEND": backend})
                for backend in backends]
    # The same TLS settings as nginx's and HAProxy's (salam sends one
    # ticket per handshake and keeps no session cache by itself).
    tls = ["--tls-cert", str(tls_cert), "--tls-ciphersuites", TLS_CIPHERSUITE,
           "--tls-groups", TLS_GROUP]

    def daemon(backend, *extra, quiet=True, program=argv):
        threads = [] if "--threads" in extra else ["--threads", "1"]

        def command(mode, port, scratch):
            service, flags = SALAM_MODES.get(mode, (mode, []))
            return [*program, "--listen", f"127.0.0.1:{port}", *threads, "--backend", backend,
                    "--service", service, "--max-connections", "200000",
                    *(["--quiet"] if quiet else []), *flags,
                    *(tls if mode.startswith("tls-") else []), *extra]
        return command
    workloads = EVERY_WORKLOAD | (TLS_WORKLOADS if tls_cert else set())
    # The default configuration on each backend, and greet with
    # TCP_DEFER_ACCEPT, as the minimal C server runs it. Variants (NAME,
    # FLAGS) run on the first backend with FLAGS and nothing else added:
    # `--salam-variant text=` logs every connection, `quiet=--quiet` does not.
    # Others (NAME, COMMAND) are other salam binaries (a build from before a
    # change) on the first backend, with COMMAND's flags and the listener's,
    # as variants are: `before=OLD/salam --quiet`.
    return [*(Peer(f"salam/{backend}", workloads, daemon(backend)) for backend in backends),
            *(Peer(f"salam/{name}", workloads,
                   daemon(backends[0], program=shlex.split(command), quiet=False))
              for name, command in others),
            *(Peer(f"salam/{backend}+defer", {"greet"}, daemon(backend, "--defer-accept"))
              for backend in backends),
            *(Peer(f"salam/{name}", workloads,
                   daemon(backends[0], *shlex.split(flags), quiet=False))
              for name, flags in variants)]


def all_peers(salam_cmd, salam_backends, salam_variants=(), tls_cert=None, salam_others=()):
    """Every peer. TLS workloads need `tls_cert` and the salam daemon (the
    proxies' upstream): without them no peer serves them."""
    tls = TLS_WORKLOADS if tls_cert and is_daemon(salam_cmd) else set()
    return [
        # nginx answers greetings and handshakes itself (`return`); it
        # relays what it cannot discard or hold.
        Peer("nginx", {"greet", "banner", "burst"} | tls, nginx_command(tls_cert),
             upstream=plain_upstream(salam_cmd, {"tls-discard", "tls-echo"})),
        # HAProxy closes after handshakes itself; it relays everything else.
        Peer("haproxy", tls, haproxy_command(tls_cert),
             upstream=plain_upstream(salam_cmd, {"tls-greet", "tls-discard", "tls-echo"})),
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
        *salam_peers(salam_cmd, salam_backends, salam_variants, tls_cert if tls else None,
                      salam_others),
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


class Process:
    """One server process: its own process group, pinned with taskset,
    accepting connections on `port`."""

    def __init__(self, name, argv, port, scratch, cpu, env=None):
        self.name = name
        self.log_path = scratch / f"{name.replace('/', '-')}.log"
        deadline = time.monotonic() + 10
        # A closed io_uring listener can linger a moment after its process.
        while not port_is_free(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: port {port} stays busy")
            time.sleep(0.05)
        if cpu is not None:
            argv = ["taskset", "--cpu-list", str(cpu), *argv]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                cwd=scratch, env=dict(os.environ, **(env or {})), start_new_session=True)
        while not accepts_connections(port):
            if self.process.poll() is not None:
                raise RuntimeError(f"{name} exited ({self.process.returncode}) at start:\n"
                                   f"{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} does not accept connections on port {port}")
            time.sleep(0.05)

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


class Server:
    """A running peer, and the upstream it relays to if the mode needs one
    (started first, on `upstream_port`, pinned to the same CPU)."""

    def __init__(self, peer, mode, port, scratch, cpu, upstream_port=None):
        self.peer = peer
        self.port = port
        self.upstream = None
        scratch.mkdir(parents=True, exist_ok=True)
        upstream = peer.upstream(mode) if peer.upstream else None
        extra = {}
        if upstream:
            if upstream_port is None:
                raise RuntimeError(f"{peer.name}: {mode} needs an upstream port")
            self.upstream = Process(f"{peer.name}-upstream", upstream(upstream_port),
                                    upstream_port, scratch, cpu)
            extra["upstream"] = upstream_port
        try:
            self.main = Process(peer.name, peer.command(mode, port, scratch, **extra), port,
                                scratch, cpu, peer.env)
        except BaseException:
            if self.upstream:
                self.upstream.stop()
            raise
        # Let the probe connections finish before anything is measured.
        time.sleep(0.1)

    @property
    def pid(self):
        return self.main.pid

    @property
    def upstream_pid(self):
        return self.upstream.pid if self.upstream else None

    def alive(self):
        return self.main.alive() and (self.upstream is None or self.upstream.alive())

    def log_tail(self, lines=20):
        tail = self.main.log_tail(lines)
        if self.upstream and not self.upstream.alive():
            tail += f"\nupstream:\n{self.upstream.log_tail(lines)}"
        return tail

    def stop(self):
        self.main.stop()
        if self.upstream:
            self.upstream.stop()
