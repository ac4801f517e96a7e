"""examples/ticker: a periodic task on every shard and a count across
shards, on both backends."""
import sys
import unittest

import harness

BINARY = None


class TickerExample(unittest.TestCase):
    def test_counts_every_client_over_all_shards(self):
        for backend in harness.BACKENDS:
            port = harness.free_port()
            with self.subTest(backend=backend), harness.Server(
                    [BINARY, str(port), "50"], env={"SALAM_BACKEND": backend}) as server:
                replies = harness.concurrent_exchanges("127.0.0.1", port, 200)
                self.assertEqual(replies.count(b"Hello, client!\n"), 200)
                # Ticks every 50 ms; the shards' counts reach the total
                # within a few ticks (10 s is the tolerance of a busy machine).
                server.wait_for_log(r"clients greeted: 200$", timeout=10)
                status, log = server.close()
                self.assertEqual(status, 0)
                self.assertIn("clients greeted in all: 200", log)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
