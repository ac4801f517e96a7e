"""The man pages keep in step with the programs: every flag `salam --help`
and `salam-bench --help` print is documented in salam(8) and salam-bench(1);
every key the configuration parser accepts is documented in salam.toml(5),
and every key salam.toml(5) documents is one salam knows; and groff finds
nothing to warn about in any page (what lintian checks).

Usage: test_man_pages.py SALAM SALAM_BENCH MAN_DIR SOURCE_DIR
(MAN_DIR holds the generated pages: salam.8, salam.toml.5, salam-bench.1)."""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

SALAM, SALAM_BENCH, MAN_DIR, SOURCE_DIR = (sys.argv[1:5] if len(sys.argv) >= 5
                                           else (None, None, None, None))
PAGES = ("salam.8", "salam.toml.5", "salam-bench.1")

# One roff escape: \(xx, \[name], \fX, \f(xx, \f[name], \*X, \*(xx, \*[name],
# or a backslash and one character.
ESCAPE = re.compile(r"\\(\(..|\[[^\]]*\]|f(?:\(..|\[[^\]]*\]|.)|\*(?:\(..|\[[^\]]*\]|.)|.)")
MEANING = {"-": "-", "(hy": "-", "[hy]": "-", "(mi": "-", "[mi]": "-", "(en": "-",
           "e": "\\", "\\": "\\", "(aq": "'", "[aq]": "'", "*(Aq": "'", " ": " ", "~": " "}


def plain(roff):
    """The text of roff source, its escapes undone (fonts and \\& dropped)."""
    return ESCAPE.sub(lambda m: MEANING.get(m.group(1), ""), roff)


def sections(roff):
    """{section name: its roff lines}, by .SH."""
    found, name = {}, None
    for line in roff.splitlines():
        if line.startswith(".SH"):
            name = plain(line[3:]).strip().strip('"')
            found[name] = []
        elif name is not None:
            found[name].append(line)
    return found


def page(name):
    return (pathlib.Path(MAN_DIR) / name).read_text(encoding="utf-8")


def help_flags(binary):
    """Every flag in the option column of BINARY --help: -x and --long."""
    result = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    flags = set()
    for line in result.stdout.splitlines():
        match = re.match(r"  (-\S+)", line)
        if match:
            # -l,--listen  --target TEXT=...  --reuse-port,--no-reuse-port{false}
            column = re.sub(r"\{[^}]*\}|=.*", "", match.group(1))
            flags.update(flag.lstrip("!") for flag in column.split(","))
    return flags


def mentions(text, flag):
    """Whether TEXT has FLAG as a whole word: --tls is not in --tls-cert."""
    return re.search(r"(?<![\w-])" + re.escape(flag) + r"(?![\w-])", text) is not None


def parser_keys():
    """{"global": keys, "listener": keys} the parser compares names with."""
    source = pathlib.Path(SOURCE_DIR) / "apps" / "salam"
    parser = (source / "config_file.cpp").read_text()
    assert "void listener(" in parser and "void root(" in parser, "config_file.cpp changed shape"
    listener, root = parser.split("void listener(", 1)[1].split("void root(", 1)
    comparison = re.compile(r'name == "([a-z0-9-]+)"')
    keys = {"global": set(comparison.findall(root)), "listener": set(comparison.findall(listener))}
    tls = (source / "tls_config.cpp").read_text()
    assert "tls_settings()" in tls, "tls_config.cpp changed shape"
    table = tls.split("tls_settings()", 1)[1].split("};", 1)[0]
    keys["listener"] |= set(re.findall(r'\{"(tls-[a-z0-9-]+)",', table))
    return keys


SCOPES = {"GLOBAL SETTINGS": "global", "LISTENER SETTINGS": "listener"}
# A key entry: "\fBname\fR = \fItype\fR" (or "\fB[[listen]]\fR"), then .RS.
ENTRY = re.compile(r"(?:\[\[)?([a-z][a-z0-9-]*)(?:\]\])?(?: = .+)?")


def page_keys():
    """{"global": keys, "listener": keys} salam.toml(5) has an entry for."""
    keys = {"global": set(), "listener": set()}
    for name, lines in sections(page("salam.toml.5")).items():
        if name not in SCOPES:
            continue
        for line, following in zip(lines, lines[1:]):
            match = ENTRY.fullmatch(plain(line).strip())
            if line.startswith("\\fB") and following.startswith(".RS") and match:
                keys[SCOPES[name]].add(match.group(1))
    return keys


def config_for(scope, key, value):
    if scope == "global":
        return f"{key} = {value}\n"
    address = "" if key == "address" else 'address = "127.0.0.1:0"\n'
    return f"[[listen]]\n{address}{key} = {value}\n"


@unittest.skipIf(SALAM is None, "usage: test_man_pages.py SALAM SALAM_BENCH MAN_DIR SOURCE_DIR")
class ManPages(unittest.TestCase):
    def test_salam_8_documents_every_flag_of_salam_help(self):
        self.check_flags(SALAM, "salam.8", at_least=60)

    def test_salam_bench_1_documents_every_flag_of_its_help(self):
        self.check_flags(SALAM_BENCH, "salam-bench.1", at_least=25)

    def check_flags(self, binary, name, at_least):
        flags = help_flags(binary)
        self.assertGreaterEqual(len(flags), at_least, f"flags read from {binary} --help: {flags}")
        for flag in flags:
            self.assertRegex(flag, r"^(-[a-zA-Z]|--[a-z0-9][a-z0-9-]*)$", "not a flag")
        options = sections(page(name)).get("OPTIONS")
        self.assertIsNotNone(options, f"{name} has no OPTIONS section")
        text = plain("\n".join(options))
        missing = sorted(flag for flag in flags if not mentions(text, flag))
        self.assertEqual(missing, [], f"{name}'s OPTIONS lacks flags that --help lists")

    def test_whole_flags_are_matched(self):
        self.assertTrue(mentions(plain(r"\fB\-\-tls\fR, or"), "--tls"))
        self.assertTrue(mentions(plain(r"\fB\(hy\(hytls\fR"), "--tls"))
        self.assertFalse(mentions(plain(r"\fB\-\-tls\-cert\fR"), "--tls"))
        self.assertFalse(mentions("--no-reuse-port", "--reuse-port"))
        self.assertFalse(mentions("per-client", "-c"))

    def test_salam_toml_5_documents_every_key_the_parser_accepts(self):
        source, documented = parser_keys(), page_keys()
        self.assertGreaterEqual(len(source["global"]), 15, source)
        self.assertGreaterEqual(len(source["listener"]), 30, source)
        for scope in ("global", "listener"):
            with self.subTest(scope=scope):
                missing = sorted(source[scope] - documented[scope])
                self.assertEqual(missing, [], f"{scope} keys salam.toml(5) does not document")

    def test_every_key_salam_toml_5_documents_is_known_to_salam(self):
        documented = page_keys()
        self.assertGreaterEqual(len(documented["global"]), 15, documented)
        self.assertGreaterEqual(len(documented["listener"]), 30, documented)
        with tempfile.TemporaryDirectory() as scratch:
            path = os.path.join(scratch, "salam.toml")
            # An inline table is the wrong type for every key: a key salam
            # knows is refused for its value, one it does not as unknown.
            for scope, keys in documented.items():
                for key in sorted(keys):
                    with self.subTest(scope=scope, key=key):
                        stderr = self.check_config(path, config_for(scope, key, "{}"))
                        self.assertNotIn("unknown key", stderr)
                        self.assertIn(f"'{key}'", stderr)
            # The check can fail: a key salam does not know, or one out of its
            # scope, is reported unknown, whatever its value.
            for scope, key in (("global", "colour"), ("listener", "colour"),
                               ("listener", "tls-colour"), ("global", "service"),
                               ("listener", "threads")):
                with self.subTest(scope=scope, key=key, unknown=True):
                    stderr = self.check_config(path, config_for(scope, key, "{}"))
                    self.assertIn(f"unknown key '{key}'", stderr)

    def check_config(self, path, text):
        pathlib.Path(path).write_text(text)
        result = subprocess.run([SALAM, "--check-config", path], capture_output=True, text=True,
                                timeout=10)
        self.assertEqual(result.returncode, 2, f"{text!r} was accepted: {result.stdout}")
        return result.stderr

    def test_groff_has_no_warning_for_any_page(self):
        groff = shutil.which("groff")
        self.assertIsNotNone(groff, "groff is needed (Debian package groff-base)")
        for name in PAGES:
            with self.subTest(page=name):
                self.assertTrue(page(name).lstrip().startswith(".\\\""), "not scdoc's roff")
                result = subprocess.run(
                    [groff, "-k", "-t", "-man", "-ww", "-z", str(pathlib.Path(MAN_DIR) / name)],
                    capture_output=True, text=True, timeout=20,
                    env=dict(os.environ, LC_ALL="C.UTF-8"))
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertEqual(result.stderr, "", "groff warns")

    def test_the_unescaping_reads_what_scdoc_writes(self):
        self.assertEqual(plain(r"\fB\-\-read\(hysize\fR \fIN\fR, e.\&g.\& \(aqx\(aq \e"),
                         "--read-size N, e.g. 'x' \\")


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
