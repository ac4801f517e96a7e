"""salam's command line and configuration file: every kind of bad input
gets one clear message naming the flag or FILE:LINE, and exit status 2;
nothing starts half-configured."""
import os
import socket
import sys
import tempfile
import unittest

import harness

BINARY = None


def run(*args, timeout=10):
    return harness.run([BINARY, *args], capture_output=True, text=True, timeout=timeout)


class BadInput(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def config(self, text, name="salam.toml"):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def assert_rejected(self, args, *expected):
        result = run(*args)
        self.assertEqual(result.returncode, 2, f"{args}: {result.stderr}")
        self.assertEqual(result.stdout, "")
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"one line of explanation, got: {result.stderr!r}")
        self.assertTrue(lines[0].startswith("salam: "), lines[0])
        for text in expected:
            self.assertIn(text, lines[0])

    def test_flags(self):
        cases = [
            (["--bogus"], "--bogus", "salam --help"),
            (["--listen"], "--listen"),
            (["--listen", "1.2.3:80"], "--listen", "bad address '1.2.3:80'"),
            (["--listen", "127.0.0.1:70000"], "--listen", "port out of range"),
            (["--listen", "localhost:80"], "--listen", "host names are not resolved"),
            (["--listen", "::1:80"], "--listen", "in brackets"),
            (["--listen", "unix:"], "--listen", "missing path"),
            (["--service", "gopher"], "--service", "unknown service 'gopher'", "echo"),
            (["--read-size", "0"], "--read-size", "between 1 and 65536"),
            (["--read-size", "65537"], "--read-size", "between 1 and 65536"),
            (["--read-size", "many"], "--read-size"),
            (["--read-timeout", "10"], "--read-timeout", "bad duration '10'"),
            (["--idle-timeout", "5 minutes"], "--idle-timeout", "bad duration"),
            (["--drain-timeout", "-1s"], "--drain-timeout", "bad duration"),
            (["--accept-grace", "0s"], "--accept-grace", "bad duration"),
            (["--threads", "-1"], "--threads"),
            (["--backend", "kqueue"], "--backend", "unknown backend 'kqueue'"),
            (["--max-connections", "0"], "--max-connections"),
            (["--backlog", "0"], "--backlog"),
            (["--log-format", "xml"], "--log-format", "text or json"),
            (["--log-level", "loud"], "--log-level"),
            (["--message", "bad \\q escape"], "--message", "unknown escape \\q"),
            (["--message", "\\x4"], "--message", "two hexadecimal digits"),
        ]
        for args, *expected in cases:
            with self.subTest(args=args):
                self.assert_rejected(args, *expected)

    def test_configuration_files(self):
        cases = [
            ("threads = 2\n[[listen]\n", ":2:"),
            ("threads = \"two\"\n", ":1:", "'threads' must be an integer"),
            ("\n\ncolour = \"blue\"\n", ":3:", "unknown key 'colour'"),
            ("[[listen]]\naddress = \"127.0.0.1:1\"\nspeed = 3\n", ":3:", "unknown key 'speed'"),
            ("[[listen]]\nservice = \"echo\"\n", ":1:", "needs an 'address'"),
            ("[[listen]]\naddress = \"127.0.0.1:1\"\n[[listen]]\naddress = \"127.0.0.1:1\"\n",
             ":3:", "already used"),
            ("[[listen]]\naddress = \"127.0.0.1:1\"\nread-size = 0\n", ":3:", "between 1 and 65536"),
            ("[[listen]]\naddress = \"127.0.0.1:1\"\nread-timeout = 10\n", ":3:", "must be a string"),
            ("[[listen]]\naddress = \"127.0.0.1:1\"\ngreet-first = \"yes\"\n", ":3:", "true or false"),
            ("[listen]\naddress = \"127.0.0.1:1\"\n", ":1:", "[[listen]]"),
            ("drain-timeout = \"forever\"\n", ":1:", "bad duration"),
            ("accept-grace = 2\n", ":1:", "accept-grace"),
            ("[[listen]]\naddress = \"127.0.0.1:1\"\nservice = \"qotd\"\nquotes-file = \"/nonexistent\"\n",
             "cannot read quotes file"),
        ]
        for text, *expected in cases:
            with self.subTest(config=text):
                path = self.config(text)
                self.assert_rejected(["--config", path], path, *expected)
                self.assert_rejected(["--check-config", path], path, *expected)

    def test_missing_configuration_file(self):
        self.assert_rejected(["--config", "/nonexistent/salam.toml"], "/nonexistent/salam.toml",
                             "cannot read")

    def test_check_config_accepts_a_good_file(self):
        path = self.config('threads = 1\n[[listen]]\naddress = "127.0.0.1:7"\nservice = "echo"\n'
                           '[[listen]]\naddress = "[::1]:13"\nservice = "daytime"\n')
        result = run("--check-config", path)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("configuration is valid (2 listener(s))", result.stdout)

    def test_the_environment_chooses_the_backend_when_nothing_else_does(self):
        bad = dict(os.environ, SALAM_BACKEND="kqueue")
        path = self.config('[[listen]]\naddress = "127.0.0.1:0"\n')
        for args in (["--listen", "127.0.0.1:0"], ["--check-config", path]):
            with self.subTest(args=args):
                result = harness.run([BINARY, *args], capture_output=True, text=True, timeout=10,
                                     env=bad)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn("salam: SALAM_BACKEND: unknown backend 'kqueue'", result.stderr)
        with harness.Server([BINARY, "--listen", "127.0.0.1:0"],
                            env={"SALAM_BACKEND": "epoll"}) as server:
            self.assertRegex(server.log(), r"listening on \S+ \(\d+ shards?, epoll\)")
            server.close()
        # A flag wins, and the environment is not read at all then.
        with harness.Server([BINARY, "--listen", "127.0.0.1:0", "--backend", "epoll"],
                            env={"SALAM_BACKEND": "kqueue"}) as server:
            self.assertRegex(server.log(), r"\(\d+ shards?, epoll\)")
            server.close()

    def test_help_and_version(self):
        result = run("--help")
        self.assertEqual(result.returncode, 0)
        for text in ("Usage: salam", "--listen", "--service", "--message", "--read-size",
                     "--greet-first", "--max-connections", "--read-timeout", "--idle-timeout",
                     "--drain-timeout", "--accept-grace", "--threads", "--backend", "--log-format", "--quiet",
                     "--config", "--check-config", "Listening:", "Service:", "Logging:",
                     "chargen", "qotd", "SIGHUP", "Examples:"):
            self.assertIn(text, result.stdout)
        result = run("--version")
        self.assertEqual(result.returncode, 0)
        self.assertRegex(result.stdout, r"^salam \d+\.\d+\.\d+\n")
        self.assertIn("backends: io_uring (", result.stdout)
        self.assertIn("compiler: ", result.stdout)


class CannotListen(unittest.TestCase):
    def test_an_address_in_use_stops_the_start_with_a_clear_message(self):
        # Whatever socket mode either side uses: an SO_REUSEPORT group must
        # not silently join another process's sockets on the same address.
        modes = ("--reuse-port", "--no-reuse-port")
        for first_mode in modes:
            for second_mode in modes:
                with self.subTest(first=first_mode, second=second_mode), harness.Server(
                        [BINARY, "--listen", "127.0.0.1:0", "--threads", "2",
                         first_mode]) as first:
                    taken = first.addresses[0]
                    result = run("--listen", taken, "--threads", "2", second_mode)
                    self.assertEqual(result.returncode, 1)
                    self.assertIn(f"cannot listen on {taken}: Address already in use",
                                  result.stderr)
                    first.close()

    def test_nothing_starts_half_configured(self):
        # The second listener cannot be opened: the first must not be left
        # serving either.
        with harness.Server([BINARY, "--listen", "127.0.0.1:0"]) as first:
            taken = first.addresses[0]
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                free = f"127.0.0.1:{probe.getsockname()[1]}"
            result = run("--listen", free, "--listen", taken)
            self.assertEqual(result.returncode, 1)
            self.assertIn(f"cannot listen on {taken}", result.stderr)
            host, port = free.split(":")
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection((host, int(port)), timeout=2).close()
            first.close()


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
