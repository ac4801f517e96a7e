"""The admin endpoint's status page, read as an operator reads it: in a
browser. Headless Chromium loads the page from the real daemon and runs its
script, which fetches status.json; the test reads what the page shows from
the DOM Chromium dumps (every value carries data-field, and data-value where
the text is formatted). Runs on both backends."""
import html.parser
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import harness

BINARY = None
CHROMIUM = shutil.which("chromium")
ADMIN = r"admin endpoint on (http://\S+/)"
GREETINGS = 25


class Page(html.parser.HTMLParser):
    """What a dumped status page shows: `fields` (the header's) and
    `listeners` (address -> fields). A field is {"text", "value", "reasons",
    "attrs"}; "reasons" maps each reason a count cell lists to its count."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}

    def __init__(self, text):
        super().__init__()
        self.fields, self.listeners = {}, {}
        self._open = []  # (tag, listener address or None, field or None)
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        listener = self._open[-1][1] if self._open else None
        if "data-listener" in attrs:
            listener = attrs["data-listener"]
            self.listeners[listener] = {}
        field = None
        if "data-field" in attrs:
            field = {"text": "", "value": attrs.get("data-value"), "reasons": {}, "attrs": attrs}
            where = self.fields if listener is None else self.listeners[listener]
            where[attrs["data-field"]] = field
        if "data-reason" in attrs:
            owner = next(f for _, _, f in reversed(self._open) if f is not None)
            owner["reasons"][attrs["data-reason"]] = int(attrs["data-value"])
        if tag not in self.VOID:
            self._open.append((tag, listener, field))

    def handle_endtag(self, tag):
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        for _, _, field in self._open:
            if field is not None:
                field["text"] += data

    def text(self, name, listener=None):
        fields = self.fields if listener is None else self.listeners[listener]
        return " ".join(fields[name]["text"].split())

    def number(self, name, listener=None):
        fields = self.fields if listener is None else self.listeners[listener]
        return int(fields[name]["value"])


def end_stragglers(profile, timeout=5.0):
    """Chromium's crash handler puts itself in a session of its own, out of
    the process group harness.run ends, and exits soon after the browser.
    It is found by the profile directory in its command line (its database
    is under HOME, which is the profile); waited for, then killed."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if profile.encode() in f.read():
                        left.append(int(pid))
            except OSError:
                pass  # gone, or not ours to read
        if not left:
            return
        if time.monotonic() > deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return
        time.sleep(0.05)


def chromium(url, *flags):
    """Headless Chromium on `url`, with a fresh profile; returns its standard
    output. The virtual time budget lets the page's script run its fetches
    (virtual time stands still while a request is in flight) before the DOM
    is dumped or the screenshot taken: about three refreshes."""
    with tempfile.TemporaryDirectory(prefix="salam-chromium-", ignore_cleanup_errors=True) as profile:
        env = dict(os.environ, HOME=profile, XDG_CONFIG_HOME=os.path.join(profile, ".config"),
                   XDG_CACHE_HOME=os.path.join(profile, ".cache"))
        argv = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                f"--user-data-dir={profile}", "--virtual-time-budget=5000", *flags, url]
        try:
            result = harness.run(argv, timeout=60, capture_output=True, env=env)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"chromium did not finish on {url} within 60 s (a request "
                                 "that is never answered stops its virtual time)") from None
        finally:
            end_stragglers(profile)
    if result.returncode != 0:
        raise AssertionError(f"chromium exited with {result.returncode}:\n"
                             f"{result.stderr.decode(errors='replace')[-4000:]}")
    return result.stdout.decode()


def png_size(path):
    """(width, height) of a PNG, from its header."""
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise AssertionError(f"{path} is not a PNG")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


class StatusPage(unittest.TestCase):
    def setUp(self):
        self.assertIsNotNone(CHROMIUM, "no chromium on PATH: scripts/install-deps --test installs it")

    def load(self, url):
        """The page after its script has shown status.json."""
        dom = chromium(url, "--dump-dom")
        page = Page(dom)
        self.assertIn("updated", page.fields, f"not the status page:\n{dom[:2000]}")
        self.assertEqual(page.fields["updated"]["attrs"].get("data-state"), "updated",
                         f"the page shows no data: {page.text('updated')!r}")
        return page

    def load_until(self, url, ready, attempts=3):
        """Loads again (a few times at most) until `ready(page)`: a count the
        server updates just after its log line may lag the line."""
        for _ in range(attempts):
            page = self.load(url)
            if ready(page):
                break
        return page

    def test_the_page_shows_the_listener_and_counts_its_connections(self):
        version = re.match(r"salam (\S+)", harness.run([BINARY, "--version"], capture_output=True,
                                                      timeout=10, check=True).stdout.decode())
        self.assertIsNotNone(version, "salam --version names no version")
        for backend in harness.BACKENDS:
            with self.subTest(backend=backend), harness.Server(
                    [BINARY, "--backend", backend, "--listen", "127.0.0.1:0",
                     "--admin", "127.0.0.1:0"]) as server:
                url = server.wait_for_log(ADMIN).group(1)
                admin = url[len("http://"):-1]
                self.assertTrue(admin.startswith("127.0.0.1:"), url)
                listeners = [a for a in server.addresses if a != admin]
                self.assertEqual(len(listeners), 1, server.log())
                address = listeners[0]

                page = self.load(url)
                self.assertEqual(page.text("version"), version.group(1))
                self.assertEqual(page.text("state"), "running")
                self.assertEqual(page.fields["reload"]["value"], "never")
                self.assertGreater(float(page.fields["uptime"]["value"]), 0)
                self.assertIn(address, page.listeners, f"no row for {address}: {page.listeners}")
                self.assertEqual(page.text("service", address), "greet")
                self.assertEqual(page.text("tls", address), "no")
                self.assertEqual(page.number("accepted", address), 0)
                shards = page.number("shards")
                self.assertEqual(len(page.listeners[address]["shards"]["value"].split()), shards)

                host, port = harness.host_port(address)
                for _ in range(GREETINGS):
                    self.assertEqual(harness.exchange(host, port, b"hi\n"), b"Hello, client!")
                server.wait_for_count(r" closed: done", GREETINGS)

                def settled(page):
                    fields = page.listeners.get(address, {})
                    return (fields.get("closed", {}).get("reasons") == {"done": GREETINGS} and
                            fields.get("active", {}).get("value") == "0")

                page = self.load_until(url, settled)
                row = page.listeners[address]
                self.assertEqual(page.number("accepted", address), GREETINGS)
                self.assertEqual(row["closed"]["reasons"], {"done": GREETINGS})
                self.assertEqual(page.number("closed", address), GREETINGS)
                self.assertEqual(page.number("refused", address), 0)
                self.assertEqual(page.number("active", address), 0)
                self.assertEqual(page.number("bytes_received", address), 3 * GREETINGS)
                self.assertEqual(page.number("bytes_sent", address), 14 * GREETINGS)
                per_shard = [int(n) for n in row["shards"]["value"].split()]
                self.assertEqual(len(per_shard), shards)
                self.assertEqual(sum(per_shard), GREETINGS)
                self.assertIn("done", page.text("closed", address))
                # Virtual time runs ahead of the server's clock: only the form is checked.
                self.assertRegex(page.text("rate", address), r"^(–|[\d.,]+/s)$")

                with tempfile.TemporaryDirectory() as directory:
                    path = os.path.join(directory, "status.png")
                    chromium(url, f"--screenshot={path}", "--window-size=1280,720",
                             "--hide-scrollbars")
                    self.assertEqual(png_size(path), (1280, 720))
                    # Blank, that size is 4 KiB; with one heading 7; with the status page 35.
                    self.assertGreater(os.path.getsize(path), 20_000)
                    if os.environ.get("SALAM_SCREENSHOT") and backend == harness.BACKENDS[0]:
                        shutil.copyfile(path, os.environ["SALAM_SCREENSHOT"])
                self.assertEqual(server.close()[0], 0)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
