"""examples/tls_server: the greeting over TLS on libsalam, on both backends."""
import os
import ssl
import socket
import subprocess
import sys
import tempfile
import unittest

import harness

BINARY = None


class TlsExample(unittest.TestCase):
    def test_greets_over_tls(self):
        with tempfile.TemporaryDirectory() as directory:
            cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                            "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                            "-keyout", key, "-out", cert], check=True, capture_output=True)
            context = ssl.create_default_context(cafile=cert)
            for backend in harness.BACKENDS:
                with self.subTest(backend=backend), harness.Server(
                        [BINARY, cert, key, "127.0.0.1:0"], env={"SALAM_BACKEND": backend}) as server:
                    port = harness.host_port(server.addresses[0])[1]
                    with context.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                                             server_hostname="localhost") as s:
                        s.sendall(b"hi")
                        self.assertEqual(s.recv(100), b"Hello, client!")
                        self.assertEqual(s.recv(100), b"")  # close_notify: a clean end
                    server.wait_for_log(r"connected \(TLSv1\.3\)")
                    # Plaintext gets a reason, and the server goes on.
                    self.assertEqual(harness.exchange("127.0.0.1", port, b"GET / HTTP/1.0\r\n\r\n"),
                                     b"")
                    server.wait_for_log(r"TLS handshake failed: http request")
                    status, _ = server.close()
                    self.assertEqual(status, 0)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
