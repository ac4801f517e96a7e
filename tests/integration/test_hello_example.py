"""examples/hello_server: the tutorial's server on libsalam, on both backends."""
import sys
import unittest

import harness

BINARY = None


def run_server(backend):
    return harness.Server([BINARY], env={"SALAM_BACKEND": backend})


class HelloExample(unittest.TestCase):
    def test_tutorial_client_gets_the_greeting_and_is_logged(self):
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), run_server(backend) as server:
                self.assertEqual(server.addresses, ["127.0.0.1:8888"])
                self.assertIn(f", {backend})", server.log())
                reply, client_port = harness.tutorial_client("127.0.0.1", 8888)
                self.assertEqual(reply, b"Hello, client!")
                server.wait_for_log(rf" info client 127\.0\.0\.1:{client_port} connected$")
                status, _ = server.close()
                self.assertEqual(status, 0)

    def test_serves_a_thousand_concurrent_clients(self):
        harness.raise_fd_limit()
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), run_server(backend) as server:
                replies = harness.concurrent_exchanges("127.0.0.1", 8888, 1000)
                problems = [r for r in replies if r != b"Hello, client!"]
                self.assertEqual(problems, [], f"{len(problems)} of 1000 clients failed")
                self.assertEqual(server.log().count(" connected\n"), 1000)
                server.assert_fds_return()
                status, _ = server.close()
                self.assertEqual(status, 0)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
