"""The admin endpoint (--admin): /metrics checked by Prometheus's own
promtool, /status.json, /ready and /live through start, reload and drain,
and its own limits against bad and excess requests — none of which touches
the service listeners."""
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import harness

BINARY = None
ADMIN = r"admin endpoint on http://(\S+)/"


def admin_server(*args, backend="io_uring", **kwargs):
    server = harness.Server([BINARY, "--backend", backend, "--admin", "127.0.0.1:0", *args],
                            **kwargs)
    server.admin = harness.host_port(server.wait_for_log(ADMIN).group(1))
    return server


def get(address, path, headers=None, method="GET"):
    """(status, headers, body) of one request on a connection of its own."""
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def metrics(address):
    status, headers, body = get(address, "/metrics")
    assert status == 200, status
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8", headers
    return body.decode()


def sample(text, name, **labels):
    """The value of the one series `name{labels...}` (labels in any order)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, value = line.rsplit(" ", 1)
        if series.split("{", 1)[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', series))
        if all(found.get(k) == str(v) for k, v in labels.items()):
            return float(value)
    raise AssertionError(f"no series {name}{labels} in:\n{text}")


def promtool_check(text):
    result = harness.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True,
                         timeout=30)
    return result.returncode, (result.stdout + result.stderr).decode()


def greet(address, count):
    for _ in range(count):
        assert harness.exchange(*address) == b"Hello, client!"


class Metrics(unittest.TestCase):
    def test_promtool_finds_nothing_wrong_before_and_after_load(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), admin_server(
                    "--listen", "127.0.0.1:0", "--threads", "2", "--deny", "127.0.0.2",
                    backend=backend) as server:
                service = harness.host_port(server.addresses[0])
                listener = server.addresses[0]
                before = metrics(server.admin)
                self.assertEqual(promtool_check(before), (0, ""))
                # Every series is there from the start, at 0.
                for reason in ("done", "client_reset", "denied", "server_error"):
                    self.assertEqual(sample(before, "salam_connections_closed_total",
                                            listener=listener, reason=reason), 0)
                self.assertEqual(sample(before, "salam_connections_refused_total",
                                        listener=listener, reason="denied"), 0)
                self.assertEqual(sample(before, "salam_connection_duration_seconds_count",
                                        listener=listener), 0)

                greet(service, 30)
                with socket.socket() as denied:  # refused by the access list
                    denied.bind(("127.0.0.2", 0))
                    denied.connect(service)
                    denied.settimeout(10)
                    self.assertEqual(denied.recv(100), b"")
                held = socket.create_connection(service, timeout=10)
                server.wait_for_count(r" connected$", 31)
                # A connection is counted as it ends, just before its record
                # is logged (a client may see the end a moment sooner).
                server.wait_for_count(r"closed: done", 30)
                server.wait_for_log(r"closed: denied")

                after = metrics(server.admin)
                self.assertEqual(promtool_check(after), (0, ""))
                at = dict(listener=listener, service="greet")
                self.assertEqual(sample(after, "salam_connections_accepted_total", **at), 32)
                self.assertEqual(sample(after, "salam_connections_active", **at), 1)
                self.assertEqual(sample(after, "salam_connections_closed_total", reason="done",
                                        **at), 30)
                self.assertEqual(sample(after, "salam_connections_refused_total",
                                        reason="denied", **at), 1)
                self.assertEqual(sample(after, "salam_bytes_received_total", **at), 60)
                self.assertEqual(sample(after, "salam_bytes_sent_total", **at),
                                 30 * len(b"Hello, client!"))
                self.assertEqual(sample(after, "salam_connection_duration_seconds_count", **at),
                                 31)
                self.assertEqual(sample(after, "salam_connection_duration_seconds_bucket",
                                        le="+Inf", **at), 31)
                shards = [sample(after, "salam_shard_connections_accepted_total", shard=i)
                          for i in (0, 1)]
                self.assertEqual(sum(shards), 32)
                self.assertEqual(sample(after, "salam_build_info", backend=backend), 1)
                self.assertLessEqual(sample(after, "salam_process_start_time_seconds"),
                                     time.time())
                held.close()
                self.assertEqual(server.close()[0], 0)

    def test_running_out_of_descriptors_is_counted_and_logged_as_critical(self):
        def few_descriptors():
            resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), admin_server(
                    "--listen", "127.0.0.1:0", "--threads", "1", "--read-timeout", "30s",
                    backend=backend, preexec_fn=few_descriptors) as server:
                service = harness.host_port(server.addresses[0])
                clients = [socket.create_connection(service, timeout=10) for _ in range(50)]
                server.wait_for_log(r"critical accept: Too many open files; pausing accept")
                for client in clients:
                    client.close()
                server.assert_fds_return()
                text = metrics(server.admin)
                self.assertGreaterEqual(sample(text, "salam_accept_errors_total",
                                               kind="descriptors"), 1)
                self.assertEqual(sample(text, "salam_accept_errors_total", kind="memory"), 0)
                server.close(allowed_errors=[r"critical accept: Too many open files"])

    def test_openmetrics_when_the_scraper_asks_for_it(self):
        with admin_server("--listen", "127.0.0.1:0") as server:
            status, headers, body = get(server.admin, "/metrics", {
                "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;"
                          "q=0.5,*/*;q=0.1"})
            self.assertEqual(status, 200)
            self.assertEqual(headers["Content-Type"],
                             "application/openmetrics-text; version=1.0.0; charset=utf-8")
            text = body.decode()
            self.assertTrue(text.endswith("# EOF\n"))
            self.assertIn("# TYPE salam_connections_accepted counter\n", text)
            self.assertIn("salam_connections_accepted_total{", text)
            server.close()

    def test_tls_listeners_report_handshakes_and_certificate_expiry(self):
        directory = tempfile.mkdtemp(prefix="salam-admin-")
        try:
            pem = os.path.join(directory, "server.pem")
            harness.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost", "-addext",
                         "subjectAltName=DNS:localhost", "-days", "30", "-keyout", pem, "-out",
                         pem], capture_output=True, check=True)
            not_after = harness.run(["openssl", "x509", "-in", pem, "-noout", "-enddate"],
                                    capture_output=True, check=True).stdout.decode()
            expires = time.mktime(time.strptime(not_after.strip().split("=", 1)[1],
                                                "%b %d %H:%M:%S %Y GMT")) - time.timezone
            with admin_server("--listen", "127.0.0.1:0", "--tls-cert", pem) as server:
                import ssl
                context = ssl.create_default_context(cafile=pem)
                host, port = harness.host_port(server.addresses[0])
                for _ in range(3):
                    with socket.create_connection((host, port), timeout=10) as raw:
                        with context.wrap_socket(raw, server_hostname="localhost") as tls:
                            tls.sendall(b"hi")
                            self.assertEqual(tls.recv(100), b"Hello, client!")
                with socket.create_connection((host, port), timeout=10) as plain:
                    plain.sendall(b"GET / HTTP/1.0\r\n\r\n")  # not TLS: a failed handshake
                    plain.recv(100)
                server.wait_for_count(r"closed: ", 4)
                text = metrics(server.admin)
                self.assertEqual(promtool_check(text), (0, ""))
                at = dict(listener=server.addresses[0], service="greet")
                self.assertEqual(sample(text, "salam_tls_handshakes_total", kind="full", **at), 3)
                self.assertEqual(sample(text, "salam_tls_handshake_failures_total", **at), 1)
                self.assertAlmostEqual(
                    sample(text, "salam_tls_certificate_expiry_timestamp_seconds",
                           certificate=pem, **at), expires, delta=1)
                server.close()
        finally:
            shutil.rmtree(directory)


class PrometheusFiles(unittest.TestCase):
    """deploy/prometheus: the scrape configuration and the alerting rules
    pass promtool, their unit tests pass, and every salam metric they name
    is one salam serves."""
    DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy",
                             "prometheus")

    def promtool(self, *args):
        result = harness.run(["promtool", *args], capture_output=True, timeout=60,
                             cwd=self.DIRECTORY)
        self.assertEqual(result.returncode, 0, (result.stdout + result.stderr).decode())

    def test_the_files_pass_promtool_and_name_only_real_metrics(self):
        self.promtool("check", "config", "prometheus.yml")
        self.promtool("check", "rules", "salam-rules.yml")
        self.promtool("test", "rules", "salam-rules.test.yml")
        with open(os.path.join(self.DIRECTORY, "salam-rules.yml")) as f:
            named = set(re.findall(r"\b(salam_\w+)", f.read()))
        pem = None
        directory = tempfile.mkdtemp(prefix="salam-admin-")
        try:
            pem = os.path.join(directory, "server.pem")
            harness.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost", "-days",
                         "30", "-keyout", pem, "-out", pem], capture_output=True, check=True)
            with admin_server("--listen", "127.0.0.1:0", "--tls-cert", pem) as server:
                served = {line.split("{")[0].split(" ")[0] for line in
                          metrics(server.admin).splitlines() if not line.startswith("#")}
                server.close()
        finally:
            shutil.rmtree(directory)
        self.assertEqual(named - served, set(), "rules name metrics salam does not serve")


class Status(unittest.TestCase):
    def test_status_json_reports_listeners_and_reloads(self):
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write('[[listen]]\naddress = "127.0.0.1:0"\nservice = "echo"\n')
            config = f.name
        try:
            with admin_server("--config", config) as server:
                status, headers, body = get(server.admin, "/status.json")
                self.assertEqual(status, 200)
                self.assertEqual(headers["Content-Type"], "application/json")
                state = json.loads(body)
                self.assertEqual(state["state"], "running")
                self.assertTrue(state["ready"])
                self.assertEqual(state["pid"], server.pid)
                self.assertEqual(state["reload"]["count"], 0)
                self.assertIsNone(state["reload"]["last_time"])
                [listener] = state["listeners"]
                self.assertEqual(listener["address"], server.addresses[0])
                self.assertEqual(listener["service"], "echo")
                self.assertEqual(listener["closed"]["done"], 0)
                self.assertEqual(listener["settings"]["idle-timeout"], "1m")
                self.assertEqual(listener["settings"]["access-list"], "off")

                with open(config, "w") as f:
                    f.write("threads = -1\n")
                server.process.send_signal(signal.SIGHUP)
                server.wait_for_log(r"reload rejected")
                reload = json.loads(get(server.admin, "/status.json")[2])["reload"]
                self.assertEqual(reload["count"], 1)
                self.assertFalse(reload["last_successful"])
                self.assertIn("threads", reload["last_error"])
                text = metrics(server.admin)
                self.assertEqual(sample(text, "salam_config_last_reload_successful"), 0)
                self.assertEqual(sample(text, "salam_config_reload_failures_total"), 1)

                with open(config, "w") as f:
                    f.write('[[listen]]\naddress = "127.0.0.1:0"\nservice = "discard"\n')
                before = time.time()
                server.process.send_signal(signal.SIGHUP)
                server.wait_for_log(r"configuration reloaded")
                state = json.loads(get(server.admin, "/status.json")[2])
                self.assertTrue(state["reload"]["last_successful"])
                self.assertEqual(state["reload"]["last_error"], "")
                self.assertGreaterEqual(state["reload"]["last_success_time"], before - 1)
                self.assertEqual([l["service"] for l in state["listeners"]], ["discard"])
                self.assertEqual(server.close(allowed_errors=[r"reload rejected"])[0], 0)
        finally:
            os.unlink(config)

    def test_ready_and_live_through_the_drain(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), admin_server(
                    "--listen", "127.0.0.1:0", "--read-timeout", "1m", "--drain-timeout", "20s",
                    backend=backend) as server:
                self.assertEqual(get(server.admin, "/ready")[::2], (200, b"ready\n"))
                self.assertEqual(get(server.admin, "/live")[::2], (200, b"live\n"))
                self.assertEqual(get(server.admin, "/ready", method="HEAD")[::2], (200, b""))
                # A connection that holds the drain open.
                service = harness.host_port(server.addresses[0])
                held = socket.create_connection(service, timeout=10)
                server.wait_for_count(r" connected$", 1)
                server.process.send_signal(signal.SIGTERM)
                server.wait_for_log(r"stopping")
                self.assertEqual(get(server.admin, "/ready")[::2], (503, b"draining\n"))
                self.assertEqual(get(server.admin, "/live")[0], 200)
                self.assertEqual(json.loads(get(server.admin, "/status.json")[2])["state"],
                                 "draining")
                held.sendall(b"hi")
                self.assertEqual(held.recv(100), b"Hello, client!")
                held.close()
                self.assertEqual(server.process.wait(10), 0)
                server.close()

    def test_a_unix_socket_endpoint(self):
        directory = tempfile.mkdtemp(prefix="salam-admin-")
        path = os.path.join(directory, "admin.sock")
        try:
            with harness.Server([BINARY, "--listen", "127.0.0.1:0", "--admin",
                                 "unix:" + path]) as server:
                server.wait_for_log(r"admin endpoint on unix:" + re.escape(path))
                reply = harness.unix_exchange(path, b"GET /ready HTTP/1.0\r\n\r\n")
                self.assertTrue(reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply)
                self.assertTrue(reply.endswith(b"\r\n\r\nready\n"), reply)
                server.close()
            self.assertFalse(os.path.exists(path), "the socket file is removed at exit")
        finally:
            shutil.rmtree(directory)


class Limits(unittest.TestCase):
    def test_bad_requests_get_their_status_and_cost_nothing_else(self):
        with admin_server("--listen", "127.0.0.1:0") as server:
            service = harness.host_port(server.addresses[0])
            cases = [
                (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
                (b"GET / HTTP/1.1\r\n\r\n", 400),
                (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200) + b"\r\n\r\n", 400),
                (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000, 431),
                (b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505),
                (b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
            ]
            for request, code in cases:
                reply = harness.exchange(*server.admin, request)
                self.assertTrue(reply.startswith(f"HTTP/1.1 {code} ".encode()), (request, reply))
            # Keep-alive: three requests on one connection, answered in order.
            reply = harness.exchange(*server.admin, b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n" * 2 +
                                 b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            self.assertEqual(reply.count(b"HTTP/1.1 200 OK"), 3)
            self.assertTrue(reply.endswith(b"ready\n"))
            greet(service, 3)
            server.assert_fds_return()
            server.close()

    def test_connections_past_the_limit_are_closed_and_the_service_is_untouched(self):
        with admin_server("--listen", "127.0.0.1:0") as server:
            service = harness.host_port(server.addresses[0])
            idle = [socket.create_connection(server.admin, timeout=10) for _ in range(64)]
            # All 64 are taken (each answers); the 65th is closed at once.
            for s in idle:
                s.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertIn(b"200 OK", s.recv(4096))
            extra = socket.create_connection(server.admin, timeout=10)
            extra.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                self.assertEqual(extra.recv(4096), b"")
            except ConnectionResetError:
                pass
            extra.close()
            greet(service, 5)  # the service listener never noticed
            for s in idle:
                s.close()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    if get(server.admin, "/live")[0] == 200:
                        break
                except ConnectionError:
                    time.sleep(0.05)
            self.assertEqual(get(server.admin, "/live")[0], 200)
            server.assert_fds_return()
            server.close()

    def test_a_bad_admin_address_is_a_clear_error(self):
        result = harness.run([BINARY, "--admin", "nowhere"], capture_output=True, timeout=10)
        self.assertEqual(result.returncode, 2)
        self.assertIn(b"--admin: bad address 'nowhere'", result.stderr)
        result = harness.run([BINARY, "--listen", "127.0.0.1:8999", "--admin", "127.0.0.1:8999"],
                             capture_output=True, timeout=10)
        self.assertEqual(result.returncode, 2)
        self.assertIn(b"is the admin endpoint's", result.stderr)
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            result = harness.run([BINARY, "--listen", "127.0.0.1:0", "--admin",
                                  f"127.0.0.1:{port}"], capture_output=True, timeout=10)
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"127.0.0.1:{port}".encode(), result.stderr)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
