"""TLS, black box: every service over TLS on both backends, with three
independent clients (Python's ssl, openssl s_client, gnutls-cli); versions,
SNI, ALPN, client certificates and CRLs; resumption and the rules that bind
a session to what it was made under; reloads that keep the last good
certificates; and bad input that ends one connection and nothing else.

The certificates are made at the start with the openssl command: a CA, two
server certificates, two client certificates, one of them revoked."""
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness

BINARY = None
PKI = None  # the directory with the certificates


def openssl(*args, cwd=None):
    subprocess.run(["openssl", *args], cwd=cwd or PKI, check=True, capture_output=True, timeout=30)


def make_pki(directory):
    """CA, server certificates alpha (alpha.test, a2.test) and beta
    (*.beta.test), client certificates one and two (two revoked)."""
    with open(os.path.join(directory, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca=local\n[local]\ndatabase=index.txt\ncrlnumber=crlnumber\n"
                "default_md=sha256\ndefault_crl_days=30\ncertificate=ca.pem\nprivate_key=ca.key\n"
                "[req]\ndistinguished_name=dn\n[dn]\n")
    open(os.path.join(directory, "index.txt"), "w").close()
    with open(os.path.join(directory, "crlnumber"), "w") as f:
        f.write("01\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
            "-subj", "/CN=salam test CA", "-config", "ca.cnf",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)

    def leaf(name, subject, san=None):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
                "-config", "ca.cnf", cwd=directory)
        extensions = os.path.join(directory, f"{name}.ext")
        with open(extensions, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            if san:
                f.write(f"subjectAltName={san}\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "20", "-extfile", extensions,
                cwd=directory)
        with open(os.path.join(directory, f"{name}.full"), "w") as out:
            for part in (f"{name}.pem", f"{name}.key"):
                with open(os.path.join(directory, part)) as f:
                    out.write(f.read())

    leaf("alpha", "/CN=alpha.test", "DNS:alpha.test,DNS:a2.test")
    leaf("beta", "/CN=beta.test", "DNS:*.beta.test")
    leaf("one", "/CN=client one")
    leaf("two", "/CN=client two")
    openssl("ca", "-config", "ca.cnf", "-revoke", "two.pem", cwd=directory)
    openssl("ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem", cwd=directory)


def path(name):
    return os.path.join(PKI, name)


def text(name):
    with open(path(name)) as f:
        return f.read()


def start(backend, *args, ready=r"listening on (\S+)"):
    argv = [BINARY, "--backend", backend, "--listen", "127.0.0.1:0",
            "--tls-cert", path("alpha.full"), *args]
    return harness.Server(argv, ready=ready)


def port_of(server, index=0):
    return harness.host_port(server.addresses[index])[1]


CONTEXTS = {}


def client_context(cert=None, minimum=None, maximum=None, alpn=None):
    """One context per set of arguments: a session resumes only through the
    context that made it."""
    key = (cert, minimum, maximum, tuple(alpn or ()))
    if key not in CONTEXTS:
        CONTEXTS[key] = make_context(cert, minimum, maximum, alpn)
    return CONTEXTS[key]


def make_context(cert, minimum, maximum, alpn):
    context = ssl.create_default_context(cafile=path("ca.pem"))
    if cert:
        context.load_cert_chain(path(f"{cert}.pem"), path(f"{cert}.key"))
    if minimum:
        context.minimum_version = minimum
    if maximum:
        context.maximum_version = maximum
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def tls_connect(port, name="alpha.test", context=None, session=None):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        return (context or client_context()).wrap_socket(raw, server_hostname=name,
                                                         session=session)
    except BaseException:
        raw.close()
        raise


def read_to_end(tls_socket):
    """Everything until close_notify; a truncation raises."""
    data = b""
    while True:
        chunk = tls_socket.recv(65536)
        if not chunk:
            return data
        data += chunk


def greet(port, name="alpha.test", context=None, session=None):
    with tls_connect(port, name, context, session) as s:
        s.sendall(b"hi")
        return read_to_end(s), s.version(), s.session, s.session_reused


def s_client(port, *args, stdin=b"", timeout=15, ign_eof=True):
    """openssl s_client's output (stdout and stderr)."""
    # -ign_eof: the end of stdin does not end the connection; the server does.
    result = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                             "-CAfile", path("ca.pem"), *(["-ign_eof"] if ign_eof else []),
                             *args],
                            input=stdin, capture_output=True, timeout=timeout)
    return (result.stdout + result.stderr).decode(errors="replace")


def raw_exchange(port, data, then_close=True, timeout=10):
    """Sends bytes to the TLS port; returns what came back before EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if then_close:
            s.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                received += chunk
        except ConnectionResetError:
            pass
        return received


class TlsTest(unittest.TestCase):
    def test_every_service_over_tls(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                with start(backend) as server:
                    port = port_of(server)
                    reply, version, _, reused = greet(port)
                    self.assertEqual(reply, b"Hello, client!")
                    self.assertEqual(version, "TLSv1.3")
                    self.assertFalse(reused)
                    # The record names the session.
                    line = server.wait_for_log(r"closed: done.*TLSv1\.3 TLS_AES_128_GCM_SHA256 "
                                               r"sni=alpha\.test handshake [0-9.]+ ms$").group(0)
                    self.assertNotIn("resumed", line)
                    # Kernel TLS: probed once, said in one line (this kernel
                    # may or may not have the module; either way TLS works).
                    self.assertEqual(len(re.findall(r"TLS: records are encrypted in user space "
                                                    r"\(kernel TLS is", server.log())), 1)
                    server.close()
                with start(backend, "--service", "echo") as server:
                    with tls_connect(port_of(server)) as s:
                        for size in (1, 1000, 100_000):
                            payload = os.urandom(size)
                            s.sendall(payload)
                            echoed = b""
                            while len(echoed) < size:
                                echoed += s.recv(65536)
                            self.assertEqual(echoed, payload)
                    server.close()
                for service, check in (("daytime", rb"\d{4}"), ("qotd", rb"."),
                                       ("chargen", rb"!\"#")):
                    with start(backend, "--service", service) as server:
                        with tls_connect(port_of(server)) as s:
                            self.assertRegex(s.recv(4096), check, service)
                        server.close()
                with start(backend, "--service", "discard") as server:
                    with tls_connect(port_of(server)) as s:
                        s.sendall(b"x" * 200_000)
                        s.unwrap()  # our close_notify, then the server's
                    server.wait_for_log(r"closed: (done|client_closed), \d{6} bytes in")
                    server.close()

    def test_openssl_and_gnutls_clients_with_alpn(self):
        with start("auto", "--tls-alpn", "h2,http/1.1") as server:
            port = port_of(server)
            out = s_client(port, "-servername", "alpha.test", "-alpn", "http/1.1,h2",
                           "-verify_return_error", stdin=b"hi")
            self.assertIn("ALPN protocol: h2", out)
            self.assertIn("Hello, client!", out)
            self.assertIn("Verify return code: 0 (ok)", out)
            # GnuTLS: a second, independent implementation.
            result = subprocess.run(
                ["gnutls-cli", "--x509cafile", path("ca.pem"), "--port", str(port),
                 "--alpn", "http/1.1", "--sni-hostname", "alpha.test",
                 "--verify-hostname", "alpha.test", "127.0.0.1"],
                input=b"hi", capture_output=True, timeout=15)
            gnutls = (result.stdout + result.stderr).decode(errors="replace")
            self.assertIn("The certificate is trusted", gnutls)
            self.assertIn("Application protocol: http/1.1", gnutls)
            self.assertIn("Hello, client!", gnutls)
            server.wait_for_log(r"alpn=h2 ")
            server.wait_for_log(r"alpn=http/1.1 ")
            # No protocol in common: refused, as RFC 7301 says.
            out = s_client(port, "-servername", "alpha.test", "-alpn", "spdy/3", stdin=b"hi")
            self.assertNotIn("Hello, client!", out)
            server.wait_for_log(r"closed: tls_error \(")
            server.close()

    def test_versions(self):
        with start("auto") as server:
            port = port_of(server)
            reply, version, _, _ = greet(port, context=client_context(
                maximum=ssl.TLSVersion.TLSv1_2))
            self.assertEqual((reply, version), (b"Hello, client!", "TLSv1.2"))
            out = s_client(port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", stdin=b"hi")
            self.assertNotIn("Hello, client!", out)
            server.wait_for_log(r"closed: tls_error \((unsupported protocol|no protocols available)")
            # No compression, no renegotiation: s_client's R command asks
            # for one and the server says no.
            client = subprocess.Popen(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile",
                 path("ca.pem"), "-tls1_2", "-servername", "alpha.test"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            client.stdin.write(b"R\n")
            client.stdin.flush()
            try:
                out, _ = client.communicate(timeout=3)
            except subprocess.TimeoutExpired:
                client.kill()
                out, _ = client.communicate()
            out = out.decode(errors="replace")
            self.assertIn("Compression: NONE", out)
            self.assertIn("RENEGOTIATING", out)
            self.assertIn("no renegotiation", out)
            server.close()
        with start("auto", "--tls-min-version", "1.3") as server:
            port = port_of(server)
            with self.assertRaises(ssl.SSLError):
                greet(port, context=client_context(maximum=ssl.TLSVersion.TLSv1_2))
            self.assertEqual(greet(port)[1], "TLSv1.3")
            server.wait_for_log(r"closed: tls_error \(unsupported protocol\)")
            server.close()

    def test_sni_chooses_the_certificate(self):
        args = ["--tls-cert", path("beta.pem"), "--tls-key", path("alpha.key"),
                "--tls-key", path("beta.key")]
        # --tls-cert alpha.full comes first from start(); keys pair in order.
        with start("auto", *args) as server:
            port = port_of(server)
            for name, subject in (("alpha.test", "alpha.test"), ("a2.test", "alpha.test"),
                                  ("x.beta.test", "beta.test"), ("nobody.test", "alpha.test")):
                out = s_client(port, "-servername", name, stdin=b"hi")
                self.assertRegex(out, rf"subject=CN ?= ?{re.escape(subject)}", name)
                self.assertIn("Hello, client!", out)
            server.close()
        with start("auto", "--tls-cert", path("beta.full"), "--tls-sni", "strict") as server:
            port = port_of(server)
            out = s_client(port, "-servername", "nobody.test", stdin=b"hi")
            self.assertIn("unrecognized name", out)
            self.assertIn("Hello, client!", s_client(port, "-servername", "y.beta.test",
                                                     stdin=b"hi"))
            server.wait_for_log(r"closed: tls_error")
            server.close()

    def test_client_certificates(self):
        with start("auto", "--tls-client-verify", "required", "--tls-client-ca", path("ca.pem"),
                   "--tls-crl", path("crl.pem")) as server:
            port = port_of(server)
            reply, _, _, _ = greet(port, context=client_context(cert="one"))
            self.assertEqual(reply, b"Hello, client!")
            server.wait_for_log(r'client="CN=client one"')
            for cert in (None, "two"):  # none, and a revoked one
                with self.assertRaises((ssl.SSLError, ConnectionError)):
                    greet(port, context=client_context(cert=cert))
            server.wait_for_log(r"closed: tls_error \(peer did not return a certificate\)")
            server.wait_for_log(r"closed: tls_error \(.*revoked")
            server.close()
        with start("auto", "--tls-client-verify", "optional", "--tls-client-ca",
                   path("ca.pem")) as server:
            self.assertEqual(greet(port_of(server))[0], b"Hello, client!")
            self.assertEqual(greet(port_of(server), context=client_context(cert="one"))[0],
                             b"Hello, client!")
            server.close()

    def test_resumption_is_bound_to_what_it_was_made_under(self):
        config = os.path.join(PKI, "resume.toml")

        # Fixed ports: a reload matches listeners by address.
        first, second = f"127.0.0.1:{harness.free_port()}", f"127.0.0.1:{harness.free_port()}"
        with open(config, "w") as f:
            f.write(f'[[listen]]\naddress = "{first}"\n'
                    f'tls-cert = ["{path("alpha.full")}", "{path("beta.full")}"]\n'
                    f'[[listen]]\naddress = "{second}"\ntls-cert = "{path("alpha.full")}"\n'
                    f'tls-client-verify = "required"\ntls-client-ca = "{path("ca.pem")}"\n')
        with harness.Server([BINARY, "--config", config]) as server:
            plain, strict = port_of(server, 0), port_of(server, 1)
            _, _, session, _ = greet(plain)
            # The same listener and name: resumed (a fresh ticket each time).
            _, _, session, reused = greet(plain, session=session)
            self.assertTrue(reused)
            # The same certificate under another of its names: a full handshake.
            self.assertFalse(greet(plain, "a2.test", session=session)[3])
            # Another certificate's name: a full handshake.
            self.assertFalse(greet(plain, "x.beta.test", session=session)[3])
            # CVE-2025-23419's shape: the same certificate on a listener that
            # requires client certificates. The session does not let a client
            # without one in.
            with self.assertRaises((ssl.SSLError, ConnectionError)):
                greet(strict, session=session)
            # With s_client and a saved session file, across a reload that
            # changes nothing: resumed.
            sess = os.path.join(PKI, "alpha.sess")
            out = s_client(plain, "-servername", "alpha.test", "-sess_out", sess, stdin=b"hi")
            self.assertIn("Hello, client!", out)
            server.process.send_signal(signal.SIGHUP)
            server.wait_for_log("configuration reloaded")
            out = s_client(plain, "-servername", "alpha.test", "-sess_in", sess, stdin=b"hi")
            self.assertIn("Reused, TLSv1.3", out)
            # A reload that makes the first listener require certificates:
            # the session made without one no longer resumes there.
            _, _, session, _ = greet(strict, context=client_context(cert="one"))
            with open(config, "w") as f:
                f.write(f'[[listen]]\naddress = "{first}"\n'
                        f'tls-cert = "{path("alpha.full")}"\ntls-client-verify = "required"\n'
                        f'tls-client-ca = "{path("ca.pem")}"\n'
                        f'[[listen]]\naddress = "{second}"\n'
                        f'tls-cert = "{path("alpha.full")}"\n')
            server.process.send_signal(signal.SIGHUP)
            server.wait_for_count("configuration reloaded", 2)
            out = s_client(plain, "-servername", "alpha.test", "-sess_in", sess, stdin=b"hi")
            self.assertNotIn("Reused", out)
            self.assertNotIn("Hello, client!", out)
            # A session made with a client certificate, presented where none is
            # asked for any more: not resumed either (verification changed).
            self.assertFalse(greet(strict, session=session, context=client_context(cert="one"))[3])
            server.close()

    def test_reload_keeps_the_last_good_certificates(self):
        directory = tempfile.mkdtemp(dir=PKI)
        live = os.path.join(directory, "live.pem")
        shutil.copy(path("alpha.full"), live)
        config = os.path.join(directory, "salam.toml")
        with open(config, "w") as f:
            f.write(f'[[listen]]\naddress = "127.0.0.1:0"\nservice = "echo"\ntls-cert = "{live}"\n')
        with harness.Server([BINARY, "--config", config]) as server:
            port = port_of(server)
            # A connection open across every reload below.
            held = tls_connect(port)
            held.sendall(b"before")
            self.assertEqual(held.recv(100), b"before")
            whole = text("alpha.full")
            broken = {
                "half-written": whole[: len(whole) // 2],
                "missing": None,
                "mismatched": text("alpha.pem") + text("beta.key"),
                "garbage": "not a certificate\n",
            }
            for count, (kind, content) in enumerate(broken.items(), start=1):
                if content is None:
                    os.unlink(live)
                else:
                    with open(live, "w") as f:
                        f.write(content)
                server.process.send_signal(signal.SIGHUP)
                server.wait_for_count("reload rejected, the running configuration stays", count)
                self.assertIn(b"alpha", subprocess.run(
                    ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                     "alpha.test"], input=b"", capture_output=True, timeout=15).stdout, kind)
            rejected = re.findall(r"reload rejected.*", server.log())
            self.assertEqual(len(rejected), 4)
            self.assertTrue(any("does not match" in line for line in rejected), rejected)
            self.assertTrue(any("No such file" in line for line in rejected), rejected)
            # A good new certificate: new handshakes get it. A connection
            # whose handshake began before the reload (accepted, its
            # ClientHello not sent yet) finishes on the old certificate.
            pending = socket.create_connection(("127.0.0.1", port), timeout=10)
            time.sleep(0.3)  # accepted, and waiting in the handshake
            shutil.copy(path("beta.full"), live)
            server.process.send_signal(signal.SIGHUP)
            server.wait_for_log("configuration reloaded")
            out = s_client(port, "-servername", "x.beta.test", ign_eof=False)
            self.assertRegex(out, r"subject=CN ?= ?beta\.test")
            with client_context().wrap_socket(pending, server_hostname="alpha.test") as old:
                self.assertEqual(dict(x[0] for x in old.getpeercert()["subject"])["commonName"],
                                 "alpha.test")
                old.sendall(b"old set")
                self.assertEqual(old.recv(100), b"old set")
            held.sendall(b"after")
            self.assertEqual(held.recv(100), b"after")
            held.close()
            server.close(allowed_errors=[r"reload rejected"])

    def test_bad_input_ends_only_that_connection(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), start(
                    backend, "--service", "echo", "--tls-handshake-timeout", "500ms") as server:
                port = port_of(server)
                held = tls_connect(port)
                # A real ClientHello, to cut short.
                hello = b""
                capture = socket.socket()
                capture.bind(("127.0.0.1", 0))
                capture.listen(1)
                client = threading.Thread(target=lambda: self._try_hello(capture.getsockname()[1]))
                client.start()
                conn, _ = capture.accept()
                conn.settimeout(5)
                while len(hello) < 5 or len(hello) < 5 + struct.unpack("!H", hello[3:5])[0]:
                    hello += conn.recv(4096)
                conn.close()
                capture.close()
                client.join()
                cases = [
                    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", r"http request"),
                    (b"\x00" * 64, r"wrong version number|packet length too long|unsupported"),
                    (hello[: len(hello) // 2], r"peer closed the connection during the handshake"),
                    # An alert instead of a ClientHello.
                    (b"\x15\x03\x03\x00\x02\x02\x28", r"alert|unexpected message"),
                    # A record longer than TLS allows.
                    (b"\x16\x03\x01\xff\xff" + b"\x00" * 1000, r"length too long|record overflow|"
                                                               r"packet length"),
                ]
                for data, _ in cases:
                    raw_exchange(port, data)
                # A client that stops mid-handshake: the handshake deadline.
                with socket.create_connection(("127.0.0.1", port)) as stalled:
                    stalled.sendall(hello[:20])
                    server.wait_for_log(r"closed: timeout_tls")
                log = server.log()
                for _, reason in cases:
                    self.assertRegex(log, rf"closed: tls_error \([^)]*({reason})", reason)
                # The established connection never noticed.
                held.sendall(b"still here")
                self.assertEqual(held.recv(100), b"still here")
                held.close()
                server.assert_fds_return()
                server.close()

    @staticmethod
    def _try_hello(port):
        try:
            tls_connect(port).close()
        except (ssl.SSLError, OSError):
            pass

    def test_handshake_rate_limit_refuses_before_crypto(self):
        with start("auto", "--service", "echo", "--tls-handshake-rate", "5") as server:
            port = port_of(server)
            held = tls_connect(port)
            outcomes = []
            for _ in range(30):
                try:
                    with tls_connect(port) as s:
                        s.sendall(b"x")
                        outcomes.append(s.recv(10) == b"x")
                except (ssl.SSLError, ConnectionError):
                    outcomes.append(False)
            self.assertIn(True, outcomes)
            self.assertIn(False, outcomes)
            server.wait_for_log(r"closed: limit_handshakes")
            held.sendall(b"fine")
            self.assertEqual(held.recv(10), b"fine")
            held.close()
            server.close()

    def test_key_update_flood_ends_the_connection(self):
        with start("auto", "--service", "echo") as server:
            port = port_of(server)
            # s_client sends a KeyUpdate for each line "k"; a few in a row
            # are fine, a flood is not.
            client = subprocess.Popen(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile",
                 path("ca.pem"), "-servername", "alpha.test", "-tls1_3"], bufsize=0,
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                for _ in range(3):
                    client.stdin.write(b"k\n")
                    client.stdin.flush()
                    time.sleep(0.05)
                time.sleep(0.5)
                self.assertNotIn("KeyUpdate", server.log())
                for _ in range(20):
                    try:
                        client.stdin.write(b"k\n")
                        client.stdin.flush()
                    except BrokenPipeError:  # the server has closed: s_client is gone
                        break
                    time.sleep(0.02)
                server.wait_for_log(r"closed: tls_error \(too many KeyUpdate messages\)")
            finally:
                client.kill()
                client.wait()
                try:
                    client.stdin.close()
                except BrokenPipeError:
                    pass
            with tls_connect(port) as s:  # the server serves on
                s.sendall(b"hi")
                self.assertEqual(s.recv(10), b"hi")
            server.close()

    def test_limits_refuse_before_the_handshake(self):
        with start("auto", "--max-connections-per-client", "1", "--service", "echo",
                   "--limit-message", "busy") as server:
            port = port_of(server)
            held = tls_connect(port)
            with self.assertRaises((ssl.SSLError, ConnectionError)):
                tls_connect(port).close()
            # No plaintext limit message where a handshake is expected.
            self.assertEqual(raw_exchange(port, b"", then_close=False), b"")
            line = server.wait_for_log(r"closed: limit_conns.*").group(0)
            self.assertNotIn("TLS", line)  # no handshake was run for it
            held.close()
            server.close()

    def test_check_config_names_the_broken_file(self):
        cases = [
            (["--tls-cert", path("alpha.pem")], r"cannot read the private key"),
            (["--tls-cert", path("alpha.pem"), "--tls-key", path("beta.key")], r"does not match"),
            (["--tls-cert", "/nonexistent.pem"], r"cannot read certificate file '/nonexistent.pem'"),
            (["--tls-cert", "/tmp"], r"is a directory"),
            (["--tls-cert", path("alpha.full"), "--tls-key", path("alpha.key"), "--tls-key",
              path("beta.key")], r"2 tls-key file\(s\) for 1 tls-cert"),
            (["--tls-cert", path("alpha.full"), "--tls-min-version", "1.1"], r"expected 1.2 or 1.3"),
            (["--tls-cert", path("alpha.full"), "--tls-ciphers", "NOPE"], r"bad TLS 1.2 cipher"),
            (["--tls-cert", path("alpha.full"), "--tls-client-verify", "required"],
             r"needs the CAs"),
        ]
        empty = path("empty.toml")
        open(empty, "w").close()
        for args, message in cases:
            with self.subTest(args=args):
                result = harness.run([BINARY, "--listen", "127.0.0.1:0", *args,
                                      "--check-config", empty], capture_output=True)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertRegex(result.stderr.decode(), message)
                self.assertEqual(len(result.stderr.decode().strip().splitlines()), 1)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    with tempfile.TemporaryDirectory(prefix="salam-tls-") as directory:
        PKI = directory
        make_pki(directory)
        unittest.main()
