"""Every link between the README and the pages of docs/ leads somewhere: its file exists and, where it names a
section (``page.md#section``), the page has a heading with that anchor, as GitHub makes anchors from headings.
Links to the web are not followed (no test reaches the internet)."""

from __future__ import annotations

import os
import re
from collections import Counter

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(os.path.join("docs", name) for name in os.listdir(os.path.join(ROOT, "docs"))
                                if name.endswith(".md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1", re.M | re.S)  # fences in lists are indented
INLINE_CODE = re.compile(r"`[^`\n]*`")


def prose(text: str) -> str:
    """The page without its code blocks and inline code, where brackets are code, not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation other than '-' and '_' removed, spaces made '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()  # a link in a heading keeps its text
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: str) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, ... as on GitHub."""
    seen, result = Counter(), set()
    for line in FENCE.sub("", open(path, encoding="utf-8").read()).splitlines():
        if match := re.match(r"#{1,6} +(.+)", line):
            slug = anchor(match.group(1))
            result.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
            seen[slug] += 1
    return result


def links(page: str) -> list[str]:
    return [target for target in LINK.findall(prose(open(os.path.join(ROOT, page), encoding="utf-8").read()))
            if not re.match(r"[a-z]+:", target)]  # https:, mailto: ...


def test_the_anchors_follow_githubs_rule():
    assert anchor("Fused element-wise kernels (`--fused_kernels`)") == "fused-element-wise-kernels---fused_kernels"
    assert anchor("Adam in one update (`nn/flat_adam.py`)") == "adam-in-one-update-nnflat_adampy"
    assert anchor("Where it stands, with every kept change") == "where-it-stands-with-every-kept-change"


@pytest.mark.parametrize("page", PAGES)
def test_every_link_of_the_page_leads_somewhere(page):
    broken = []
    for target in links(page):
        path, _, section = target.partition("#")
        file = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), path)) if path else os.path.join(ROOT, page)
        if not os.path.exists(file):
            broken.append(f"{target}: no such file")
        elif section and file.endswith(".md") and section not in anchors(file):
            broken.append(f"{target}: {os.path.relpath(file, ROOT)} has no heading with that anchor")
    assert not broken, f"{page}: " + "; ".join(broken)


def _tracked_text_files() -> list[str]:
    """The README, docs/, the code, the benchmarks and the tests: every file that names another by its path."""
    found = list(PAGES)
    for folder in ("Code", "bench", "tests"):
        for root, dirs, names in os.walk(os.path.join(ROOT, folder)):
            dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
            found += [os.path.relpath(os.path.join(root, n), ROOT) for n in names if n.endswith((".py", ".md", ".sh"))]
    return found


def test_every_script_and_page_named_in_the_text_exists():
    """``bench/<script>.py`` and ``docs/<page>.md`` named in prose, docstrings and comments are no links, so the
    link check above missed them: a docstring named a benchmark, cross_corpus_data.py, that never existed."""
    named = re.compile(r"(?<![\w/.])((?:bench|docs)/[\w-]+\.(?:py|md|sh))")
    missing = sorted({f"{path}: {name}" for path in _tracked_text_files()
                      for name in named.findall(open(os.path.join(ROOT, path), encoding="utf-8").read())
                      if not os.path.isfile(os.path.join(ROOT, name))})
    assert not missing, missing


def test_every_benchmark_script_answers_help_without_measuring():
    """A script without argument parsing ran the whole benchmark on --help (53 s for bench/kernel_floor.py)."""
    bench = os.path.join(ROOT, "bench")
    scripts = [n for n in sorted(os.listdir(bench))
               if n.endswith(".py") and "__main__" in open(os.path.join(bench, n), encoding="utf-8").read()]
    assert len(scripts) >= 20
    unparsed = [n for n in scripts if "parse_args(" not in open(os.path.join(bench, n), encoding="utf-8").read()]
    assert not unparsed, unparsed
