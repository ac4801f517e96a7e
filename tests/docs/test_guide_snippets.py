"""docs/guide.md quotes programs of examples/, which are built and tested:
every ```cpp block of the guide must appear, line for line, in one of them,
so that no snippet of the guide can drift from code that compiles."""
import pathlib
import re
import sys
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def blocks(markdown):
    return re.findall(r"^```cpp\n(.*?)^```", markdown, re.S | re.M)


def normalized(text):
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


class GuideSnippets(unittest.TestCase):
    def test_every_snippet_is_quoted_from_an_example(self):
        guide = (ROOT / "docs" / "guide.md").read_text()
        examples = {path.name: normalized(path.read_text())
                    for path in (ROOT / "examples").glob("*.cpp")}
        snippets = blocks(guide)
        self.assertGreaterEqual(len(snippets), 5, "the guide quotes the examples")
        for snippet in snippets:
            text = normalized(snippet)
            with self.subTest(snippet=text.splitlines()[0]):
                self.assertTrue(any(text in source for source in examples.values()),
                                f"not in any of examples/*.cpp:\n{text}")


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
