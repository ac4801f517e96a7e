"""Socket activation with systemd's own tool: systemd-socket-activate binds
the socket, passes it as LISTEN_FDS, and execs salam on the first
connection; salam must serve on that socket without binding its own, on
both backends, keep it across a reload, and close what no listener wants."""
import os
import signal
import socket
import sys
import tempfile
import time
import unittest

import harness

BINARY = None


def activated(address, *salam_args, env=None):
    """salam under systemd-socket-activate, which listens on `address`."""
    return harness.Server(["systemd-socket-activate", "-l", address, BINARY, *salam_args],
                          ready=r"Listening on (\S+) as", env=env)


def greet_when_ready(port, timeout=10):
    """The first connection also starts salam: retry until it answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return harness.exchange("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SocketActivation(unittest.TestCase):
    def test_the_passed_socket_is_used_not_rebound(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend):
                port = harness.free_port()
                address = f"127.0.0.1:{port}"
                with activated(address, "--listen", address, "--backend", backend) as server:
                    self.assertEqual(greet_when_ready(port), b"Hello, client!")
                    server.wait_for_log(rf"{address}: using the listening socket passed as "
                                        r"descriptor 3$")
                    server.wait_for_log(rf"listening on {address} \(\d+ shards?, {backend}\)")
                    self.assertNotIn("Address already in use", server.log())
                    for _ in range(20):
                        self.assertEqual(harness.exchange("127.0.0.1", port), b"Hello, client!")
                    self.assertEqual(server.close()[0], 0)

    def test_a_socket_is_matched_by_its_name_first(self):
        # The socket unit names the socket; the file's listener asks for that
        # name and spells its address otherwise (as ListenStream=PORT listens
        # on [::]): the named socket is used, nothing is bound.
        with tempfile.TemporaryDirectory() as directory:
            port, unused = harness.free_port(), harness.free_port()
            config = os.path.join(directory, "salam.toml")
            with open(config, "w") as f:
                f.write(f'[[listen]]\naddress = "127.0.0.1:{unused}"\nname = "web"\n')
            with harness.Server(["systemd-socket-activate", "-l", f"127.0.0.1:{port}",
                                 "--fdname=web", BINARY, "--config", config],
                                ready=r"Listening on (\S+) as") as server:
                self.assertEqual(greet_when_ready(port), b"Hello, client!")
                server.wait_for_log(rf"127\.0\.0\.1:{port}: using the 1 listening socket\(s\) "
                                    r"named web \(descriptor 3\)")
                server.wait_for_log(rf"listening on 127\.0\.0\.1:{port} ")
                self.assertTrue(harness.refused("127.0.0.1", unused), "the file's address is bound")
                self.assertEqual(server.close()[0], 0)

    def test_a_reload_keeps_the_passed_socket(self):
        with tempfile.TemporaryDirectory() as directory:
            port = harness.free_port()
            address = f"127.0.0.1:{port}"
            config = os.path.join(directory, "salam.toml")
            with open(config, "w") as f:
                f.write(f'[[listen]]\naddress = "{address}"\n')
            with activated(address, "--config", config) as server:
                self.assertEqual(greet_when_ready(port), b"Hello, client!")
                with open(config, "w") as f:
                    f.write(f'[[listen]]\naddress = "{address}"\nmessage = "again"\n')
                server.process.send_signal(signal.SIGHUP)
                server.wait_for_log("configuration reloaded")
                self.assertEqual(harness.exchange("127.0.0.1", port), b"again")
                self.assertEqual(server.close()[0], 0)

    def test_a_socket_no_listener_wants_is_closed_with_a_warning(self):
        passed = harness.free_port()
        own = harness.free_port()
        with activated(f"127.0.0.1:{passed}", "--listen", f"127.0.0.1:{own}") as server:
            # The connection that starts salam goes to the passed socket,
            # which salam then closes: it is refused or reset.
            try:
                harness.exchange("127.0.0.1", passed, timeout=5)
            except OSError:
                pass
            server.wait_for_log(rf"closing the socket passed as descriptor 3: no "
                                rf"listener is configured for 127\.0\.0\.1:{passed}")
            server.wait_for_log(rf"listening on 127\.0\.0\.1:{own}")
            self.assertEqual(harness.exchange("127.0.0.1", own), b"Hello, client!")
            self.assertTrue(harness.refused("127.0.0.1", passed))
            self.assertEqual(server.close()[0], 0)

    def test_a_passed_socket_of_the_wrong_kind_is_refused(self):
        port = harness.free_port()
        address = f"127.0.0.1:{port}"
        with harness.Server(["systemd-socket-activate", "--datagram", "-l", address, BINARY,
                             "--listen", address], ready=r"Listening on (\S+) as") as server:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.sendto(b"wake up", ("127.0.0.1", port))  # starts salam
            server.process.wait(timeout=10)
            self.assertEqual(server.process.returncode, 1)
            self.assertIn("inherited descriptor 3 is not a listening stream socket", server.log())


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
