"""Connection policies, black box: access lists, per-client limits, the
PROXY protocol (with real HAProxy and nginx in front), connection caps, and
the access log. Clients use several loopback source addresses (127.0.0.2,
127.0.0.3, ...) to be different clients."""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness

BINARY = None


def connect(port, source="127.0.0.1", host="127.0.0.1"):
    s = socket.socket()
    s.settimeout(10)
    s.bind((source, 0))
    s.connect((host, port))
    return s


def read_all(s):
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data


def greet_from(port, source, message=b"hi"):
    with connect(port, source) as s:
        try:
            s.sendall(message)
        except (BrokenPipeError, ConnectionResetError):
            return b""
        return read_all(s)


def v2_header(source, destination, command=1, tlvs=b""):
    """A PROXY v2 header, built by hand from the specification."""
    signature = b"\r\n\r\n\x00\r\nQUIT\n"
    (src_ip, src_port), (dst_ip, dst_port) = source, destination
    addresses = socket.inet_aton(src_ip) + socket.inet_aton(dst_ip) + struct.pack("!HH", src_port, dst_port)
    body = addresses + tlvs
    return signature + bytes([0x20 | command, 0x11]) + struct.pack("!H", len(body)) + body


class AccessLists(unittest.TestCase):
    def test_first_matching_rule_decides_and_denied_clients_get_nothing(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), harness.Server(
                    [BINARY, "--backend", backend, "--listen", "127.0.0.1:0",
                     "--allow", "127.0.0.3", "--deny", "127.0.0.0/8"]) as server:
                _, port = harness.host_port(server.addresses[0])
                self.assertEqual(greet_from(port, "127.0.0.3"), b"Hello, client!")
                self.assertEqual(greet_from(port, "127.0.0.2"), b"", "denied: not a byte")
                server.wait_for_log(r"client 127\.0\.0\.2:\d+ closed: denied, 0 bytes in, 0 bytes out")
                self.assertNotRegex(server.log(), r"client 127\.0\.0\.2:\d+ connected",
                                    "a denied client never reaches the service")
                server.close()

    def test_rules_file_is_reread_on_sighup(self):
        with tempfile.TemporaryDirectory() as directory:
            rules = os.path.join(directory, "rules")
            config = os.path.join(directory, "salam.toml")
            port = harness.free_port()
            with open(rules, "w") as f:
                f.write("# the first version\ndeny 127.0.0.2\n")
            with open(config, "w") as f:
                f.write(f'[[listen]]\naddress = "127.0.0.1:{port}"\naccess-file = "{rules}"\n')
            with harness.Server([BINARY, "--config", config]) as server:
                self.assertEqual(greet_from(port, "127.0.0.2"), b"")
                self.assertEqual(greet_from(port, "127.0.0.4"), b"Hello, client!")
                with open(rules, "w") as f:
                    f.write("deny 127.0.0.4\n")
                server.process.send_signal(signal.SIGHUP)
                server.wait_for_log("configuration reloaded")
                deadline = time.monotonic() + 5
                while greet_from(port, "127.0.0.4") != b"":
                    self.assertLess(time.monotonic(), deadline)
                self.assertEqual(greet_from(port, "127.0.0.2"), b"Hello, client!")
                server.close()

    def test_a_flood_of_denied_clients_does_not_flood_the_log(self):
        with harness.Server([BINARY, "--listen", "127.0.0.1:0", "--deny", "127.0.0.2"]) as server:
            _, port = harness.host_port(server.addresses[0])
            for _ in range(600):
                with connect(port, "127.0.0.2") as s:
                    s.close()
            self.assertEqual(greet_from(port, "127.0.0.3"), b"Hello, client!")
            time.sleep(0.2)
            records = server.log().count("closed: denied")
            # 100 at once, then 20 a second (tolerance for a slow machine).
            self.assertGreaterEqual(records, 100)
            self.assertLess(records, 400, "denied records were not rate limited")
            status, log = server.close()
            self.assertIn("refused 600 denied", log, "every refusal is counted")


class ClientLimits(unittest.TestCase):
    def test_two_connections_per_client_and_others_unaffected(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), harness.Server(
                    [BINARY, "--backend", backend, "--listen", "127.0.0.1:0", "--read-timeout", "30s",
                     "--max-connections-per-client", "2", "--quiet"]) as server:
                _, port = harness.host_port(server.addresses[0])
                sockets = [connect(port, "127.0.0.2") for _ in range(100)]
                time.sleep(0.3)
                # The two admitted ones are served; 98 were refused.
                served = 0
                for s in sockets:
                    try:
                        s.sendall(b"hi")
                        if read_all(s) == b"Hello, client!":
                            served += 1
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    s.close()
                self.assertEqual(served, 2)
                self.assertEqual(greet_from(port, "127.0.0.3"), b"Hello, client!")
                status, log = server.close()
                self.assertIn("refused 98 limit_conns", log)

    def test_connection_rate_per_client(self):
        with harness.Server([BINARY, "--listen", "127.0.0.1:0", "--connection-rate", "2",
                             "--connection-burst", "5"]) as server:
            _, port = harness.host_port(server.addresses[0])
            replies = [greet_from(port, "127.0.0.2") for _ in range(20)]
            served = replies.count(b"Hello, client!")
            # The burst of 5, plus what 2/s refills while the loop runs.
            self.assertGreaterEqual(served, 5)
            self.assertLessEqual(served, 9)
            self.assertEqual(greet_from(port, "127.0.0.3"), b"Hello, client!")
            server.wait_for_log(r"closed: limit_rate")
            server.close()

    def test_limit_message_is_sent_before_closing(self):
        with harness.Server([BINARY, "--listen", "127.0.0.1:0", "--max-connections-per-client", "1",
                             "--read-timeout", "30s", "--limit-message", "busy\\r\\n"]) as server:
            _, port = harness.host_port(server.addresses[0])
            with connect(port, "127.0.0.2") as held:
                time.sleep(0.1)
                with connect(port, "127.0.0.2") as refused:
                    self.assertEqual(read_all(refused), b"busy\r\n")
            server.close()


class ProxyProtocol(unittest.TestCase):
    def run_salam(self, *extra, backend="io_uring"):
        return harness.Server([BINARY, "--backend", backend, "--listen", "127.0.0.1:0",
                               "--proxy-protocol", "required", "--proxy-trusted", "127.0.0.1",
                               *extra])

    def test_v1_and_v2_headers_name_the_client(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), self.run_salam(backend=backend) as server:
                _, port = harness.host_port(server.addresses[0])
                with connect(port) as s:
                    s.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 8888\r\nhi")
                    self.assertEqual(read_all(s), b"Hello, client!")
                server.wait_for_log(r"client 192\.0\.2\.7:40000 connected")
                server.wait_for_log(r"client 192\.0\.2\.7:40000 via 127\.0\.0\.1:\d+ closed: done")
                with connect(port) as s:
                    s.sendall(v2_header(("198.51.100.9", 5555), ("127.0.0.1", port)) + b"hi")
                    self.assertEqual(read_all(s), b"Hello, client!")
                server.wait_for_log(r"client 198\.51\.100\.9:5555 connected")
                server.close()

    def test_a_header_one_byte_at_a_time_and_payload_in_the_same_segment(self):
        with self.run_salam("--service", "echo") as server:
            _, port = harness.host_port(server.addresses[0])
            header = v2_header(("198.51.100.10", 6000), ("127.0.0.1", port))
            with connect(port) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for byte in header:
                    s.sendall(bytes([byte]))
                    time.sleep(0.002)
                s.sendall(b"payload")
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(read_all(s), b"payload")
            with connect(port) as s:
                s.sendall(b"PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\nsame segment")
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(read_all(s), b"same segment", "bytes after the header reach the service")
            server.wait_for_log(r"client 198\.51\.100\.10:6000 connected")
            server.close()

    def test_malformed_late_and_untrusted_headers_are_refused(self):
        with self.run_salam("--proxy-timeout", "300ms") as server:
            _, port = harness.host_port(server.addresses[0])
            for bad in (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", b"PROXY TCP9 x\r\n",
                        b"GET / HTTP/1.1\r\n\r\n", b"\r\n\r\n\x00\r\nQUIT\n\x99\x11\x00\x0c" + bytes(12),
                        b"PROXY " + b"x" * 200):
                with connect(port) as s:
                    s.sendall(bad)
                    self.assertEqual(read_all(s), b"", bad)
            server.wait_for_count(r"closed: proxy_error", 5)
            with connect(port) as s:
                s.sendall(b"PROXY TCP4 1.2.3.4")  # and nothing more
                self.assertEqual(read_all(s), b"")
            server.wait_for_log(r"closed: timeout_proxy")
            server.close()
        # From an address that is not trusted, a header is never applied.
        with self.run_salam() as server:
            _, port = harness.host_port(server.addresses[0])
            with connect(port, source="127.0.0.5") as s:
                s.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 8888\r\nhi")
                self.assertEqual(read_all(s), b"")
            server.wait_for_log(r"client 127\.0\.0\.5:\d+ closed: proxy_error \(untrusted peer\)")
            self.assertNotIn("192.0.2.7", server.log())
            server.close()

    def test_optional_mode_serves_clients_without_a_header(self):
        with harness.Server([BINARY, "--listen", "127.0.0.1:0", "--proxy-protocol", "optional",
                             "--proxy-trusted", "127.0.0.1"]) as server:
            _, port = harness.host_port(server.addresses[0])
            self.assertEqual(greet_from(port, "127.0.0.1", b"plain hello"), b"Hello, client!")
            with connect(port) as s:
                s.sendall(b"PROXY TCP4 192.0.2.8 127.0.0.1 1234 8888\r\nhi")
                self.assertEqual(read_all(s), b"Hello, client!")
            server.wait_for_log(r"client 192\.0\.2\.8:1234 connected")
            server.close()


class RealBalancers(unittest.TestCase):
    """HAProxy and nginx in front of salam, as in production: salam must log
    and limit the clients they carry, not the balancer."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def start(self, argv, ready_port, stop_signal=signal.SIGTERM):
        # Ended by its own stop signal: nginx's master then stops its
        # workers and waits for them (SIGKILL would leave them running).
        peer = harness.Peer(argv, stop_signal=stop_signal, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
        self.addCleanup(peer.stop)
        process = peer.process
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", ready_port), timeout=1).close()
                return process
            except OSError:
                if process.poll() is not None:
                    self.fail(f"{argv[0]} exited: {process.stderr.read().decode()}")
                self.assertLess(time.monotonic(), deadline, f"{argv[0]} did not start")
                time.sleep(0.05)

    def haproxy(self, backend_port):
        front = harness.free_port()
        config = os.path.join(self.dir.name, "haproxy.cfg")
        with open(config, "w") as f:
            f.write(f"""global
    maxconn 1000
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend front
    bind 127.0.0.1:{front}
    default_backend salam
backend salam
    server salam 127.0.0.1:{backend_port} send-proxy-v2
""")
        self.start(["haproxy", "-f", config, "-db"], front)
        return front

    def nginx(self, backend_port):
        front = harness.free_port()
        prefix = self.dir.name
        config = os.path.join(prefix, "nginx.conf")
        with open(config, "w") as f:
            f.write(f"""load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/nginx-error.log;
events {{ worker_connections 1024; }}
stream {{
    server {{
        listen 127.0.0.1:{front};
        proxy_pass 127.0.0.1:{backend_port};
        proxy_protocol on;
    }}
}}
""")
        # SIGQUIT: nginx's graceful shutdown (the clients are gone by then).
        self.start(["nginx", "-p", prefix, "-c", config], front, stop_signal=signal.SIGQUIT)
        return front

    def check_balancer(self, start_balancer):
        if shutil.which("haproxy") is None or shutil.which("nginx") is None:
            self.fail("haproxy and nginx are test dependencies (scripts/install-deps --test)")
        with harness.Server([BINARY, "--listen", "127.0.0.1:0", "--proxy-protocol", "required",
                             "--proxy-trusted", "127.0.0.1", "--max-connections-per-client", "1",
                             "--read-timeout", "30s"]) as server:
            _, port = harness.host_port(server.addresses[0])
            front = start_balancer(port)
            with connect(front, "127.0.0.2") as s:
                client_port = s.getsockname()[1]
                s.sendall(b"hi")
                self.assertEqual(read_all(s), b"Hello, client!")
            server.wait_for_log(rf"client 127\.0\.0\.2:{client_port} connected")
            # The limit applies to the client the balancer names: a second
            # connection from .2 is refused while the first is open, while
            # .3 is served.
            held = connect(front, "127.0.0.2")  # silent: greet waits for its message
            server.wait_for_count(r"client 127\.0\.0\.2:\d+ connected", 2)
            with connect(front, "127.0.0.2") as second:
                second.sendall(b"hi")
                self.assertEqual(read_all(second), b"")
            self.assertEqual(greet_from(front, "127.0.0.3"), b"Hello, client!")
            held.sendall(b"hi")
            self.assertEqual(read_all(held), b"Hello, client!")
            held.close()
            server.wait_for_log(r"client 127\.0\.0\.2:\d+ via 127\.0\.0\.1:\d+ closed: limit_conns")
            server.close()

    def test_haproxy_send_proxy_v2(self):
        self.check_balancer(self.haproxy)

    def test_nginx_stream_proxy_protocol(self):
        self.check_balancer(self.nginx)


class Caps(unittest.TestCase):
    def test_max_lifetime_and_min_rate(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), harness.Server(
                    [BINARY, "--backend", backend, "--listen", "127.0.0.1:0", "--service", "echo",
                     "--max-lifetime", "500ms"]) as server:
                _, port = harness.host_port(server.addresses[0])
                started = time.monotonic()
                with connect(port) as s:
                    for _ in range(20):  # busy, never idle: only the lifetime ends it
                        try:
                            s.sendall(b"ping")
                            if s.recv(100) == b"":
                                break
                        except ConnectionResetError:
                            break
                        time.sleep(0.05)
                took = time.monotonic() - started
                self.assertGreaterEqual(took, 0.45)
                self.assertLess(took, 3)
                server.wait_for_log(r"closed: timeout_lifetime")
                server.close()
            with self.subTest(backend=backend), harness.Server(
                    [BINARY, "--backend", backend, "--listen", "127.0.0.1:0", "--service", "discard",
                     "--min-rate", "1000", "--min-rate-grace", "300ms"]) as server:
                _, port = harness.host_port(server.addresses[0])
                with connect(port) as s:
                    try:
                        for _ in range(40):  # 1 byte per 50 ms: 20 B/s
                            s.sendall(b"x")
                            time.sleep(0.05)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                server.wait_for_log(r"closed: too_slow")
                server.close()


class AccessLog(unittest.TestCase):
    def test_access_log_file_is_reopened_on_sighup_for_rotation(self):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "access.log")
            with harness.Server([BINARY, "--listen", "127.0.0.1:0", "--access-log", path,
                                 "--log-format", "json"]) as server:
                _, port = harness.host_port(server.addresses[0])
                self.assertEqual(greet_from(port, "127.0.0.2"), b"Hello, client!")
                time.sleep(0.2)
                os.rename(path, path + ".1")  # what logrotate does
                server.process.send_signal(signal.SIGHUP)
                server.wait_for_log("no configuration file to re-read")
                self.assertEqual(greet_from(port, "127.0.0.3"), b"Hello, client!")
                time.sleep(0.2)
                self.assertNotIn('"event":"closed"', server.log(), "records go to the file only")
                server.close()
                with open(path + ".1") as f:
                    old = [json.loads(line) for line in f]
                with open(path) as f:
                    new = [json.loads(line) for line in f]
                self.assertEqual([r["client"].split(":")[0] for r in old], ["127.0.0.2"])
                self.assertEqual([r["client"].split(":")[0] for r in new], ["127.0.0.3"])
                for record in old + new:
                    self.assertEqual(record["event"], "closed")
                    self.assertEqual(record["reason"], "done")
                    self.assertEqual(record["bytes_in"], 2)
                    self.assertEqual(record["bytes_out"], 14)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
