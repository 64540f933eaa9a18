"""Every ```python block of every ``docs/*.md`` file runs.

The blocks of one file run in order, in one namespace, in a fresh interpreter whose
working directory is empty, with no ``AGENT_KERNEL_*`` variable set. A block that
raises fails the file's test with a traceback pointing at the Markdown file and
line. (README.md's example is run by tests/test_docs.py.) Relative links between the
pages, and their #anchors, must resolve.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"

#: Generated from docstrings by docs/gen_reference.py: reference text with no
#: runnable examples (signatures and rst ``::`` blocks only). If they ever gain a
#: ```python block, `test_generated_references_hold_no_python_blocks` says so.
GENERATED = {"hooks.md", "api.md"}

FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")

# Runs in the child: executes the blocks and reports the first failure by file and line.
RUNNER = """\
import json, sys, traceback
path, blocks = sys.argv[1], json.loads(sys.stdin.read())
namespace = {"__name__": "__main__"}
for line, source in blocks:
    try:
        exec(compile("\\n" * line + source, path, "exec"), namespace)
    except BaseException:
        print(f"{path}: the python block starting at line {line} raised:", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
"""


def fences(markdown: str) -> Iterator[tuple[int, int, str]]:
    """The fenced blocks of `markdown`: (opening line, closing line, info string), 0-based.

    Follows CommonMark fences (``` or ~~~, three or more, closed by a bare fence of
    the same kind at least as long), so a fence shown inside another is not a block.

    Raises:
        ValueError: for a fence that is never closed, naming its line.
    """
    lines = markdown.split("\n")
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, info = opening["fence"], opening["info"].strip()
        end = i + 1
        while end < len(lines):
            closing = FENCE.match(lines[end])
            if closing and not closing["info"].strip() and closing["fence"].startswith(fence):
                break
            end += 1
        else:
            raise ValueError(f"line {i + 1}: the fence {fence}{info} is never closed")
        yield i, end, info
        i = end + 1


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    """The ```python blocks of `markdown`: (line of the opening fence, 1-based; source)."""
    lines = markdown.split("\n")
    return [
        (start + 1, "".join(f"{line}\n" for line in lines[start + 1 : end]) or "\n")
        for start, end, info in fences(markdown)
        if info.split(maxsplit=1)[:1] == ["python"]
    ]


def prose(markdown: str) -> str:
    """`markdown` with its fenced blocks blanked out (a link or heading in code is none)."""
    lines = markdown.split("\n")
    for start, end, _ in fences(markdown):
        lines[start : end + 1] = [""] * (end + 1 - start)
    return "\n".join(lines)


def run_blocks(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the python blocks of `path` in one namespace, in a child interpreter at `cwd`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_KERNEL_")}
    payload = json.dumps(python_blocks(path.read_text()))
    return subprocess.run(
        [sys.executable, "-c", RUNNER, str(path)],
        input=payload,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def documents() -> list[Path]:
    return sorted(p for p in DOCS.glob("*.md") if p.name not in GENERATED)


@pytest.mark.parametrize("path", documents(), ids=lambda p: f"docs/{p.name}")
def test_python_blocks_run(path: Path, tmp_path: Path) -> None:
    result = run_blocks(path, tmp_path)
    assert result.returncode == 0, f"docs/{path.name}:\n{result.stderr[-6000:]}"


@pytest.mark.parametrize("name", ["tutorial.md", "plugin-guide.md"])
def test_the_guides_have_code_to_run(name: str) -> None:
    assert len(python_blocks((DOCS / name).read_text())) >= 5, f"docs/{name} lost its examples"


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_references_hold_no_python_blocks(name: str) -> None:
    blocks = python_blocks((DOCS / name).read_text())
    assert blocks == [], f"docs/{name} now has python blocks at lines {[line for line, _ in blocks]}: run them"


def test_a_failing_block_is_reported_by_file_and_line(tmp_path: Path) -> None:
    doc = tmp_path / "broken.md"
    doc.write_text("# Title\n\n```python\nx = 1\n```\n\ntext\n\n```python\n\nassert x == 2, 'x is 1'\n```\n")
    result = run_blocks(doc, tmp_path)
    assert result.returncode == 1
    assert f"{doc}: the python block starting at line 9 raised" in result.stderr
    assert f'File "{doc}", line 11' in result.stderr and "AssertionError: x is 1" in result.stderr


def test_blocks_share_one_namespace_and_run_in_an_empty_directory(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "```python\nimport os\nseen = os.listdir('.')\n```\n"
        "~~~python\nassert seen == [], seen\n~~~\n"
        "```sh\nexit 1\n```\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    result = run_blocks(doc, work)
    assert result.returncode == 0, result.stderr


def test_an_unclosed_fence_is_an_error_naming_its_line() -> None:
    with pytest.raises(ValueError, match=r"line 3: the fence ```python is never closed"):
        python_blocks("text\n\n```python\nx = 1\n")


INNER = {"```": ["~~~", "~~~~python"], "~~~": ["```", "~~~python", "```python"], "````": ["```", "~~~"]}


@st.composite
def blocks(draw: st.DrawFn) -> tuple[str, str, list[str], list[str]]:
    """Prose, then a fenced block whose code may show other fences that do not close it."""
    fence = draw(st.sampled_from(sorted(INNER)))
    info = draw(st.sampled_from(["python", "sh", "", "python title=x", "pycon"]))
    line = st.text(alphabet="abc =1()'#", max_size=20) | st.sampled_from(INNER[fence])
    return (
        fence,
        info,
        draw(st.lists(st.text(alphabet="abc =", max_size=9), max_size=3)),
        draw(st.lists(line, max_size=4)),
    )


@given(st.lists(blocks(), max_size=5))
def test_blocks_are_found_with_their_lines(parts: list[tuple[str, str, list[str], list[str]]]) -> None:
    """Property: a document of prose and fenced blocks yields exactly its python blocks, at their lines."""
    lines: list[str] = []
    expected: list[tuple[int, str]] = []
    for fence, info, text, code in parts:
        lines += [f"prose {t}" for t in text]
        if info.split()[:1] == ["python"]:
            expected.append((len(lines) + 1, "".join(f"{c}\n" for c in code) or "\n"))
        lines += [fence + info, *code, fence]
    assert python_blocks("\n".join(lines) + "\n") == expected


LINK = re.compile(r"\]\((?![a-z]+:)(?P<path>[^)#\s]*)(?:#(?P<anchor>[^)\s]+))?\)")


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -N for repeats."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose(markdown).split("\n"):
        heading = re.match(r"#{1,6} (.*)", line)
        if heading is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading[1].strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.md")), ids=lambda p: f"docs/{p.name}")
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for link in LINK.finditer(prose(path.read_text())):
        target = (path.parent / link["path"]).resolve() if link["path"] else path
        if not target.exists():
            broken.append(f"{link[0]}: no file {target}")
        elif link["anchor"] and target.suffix == ".md" and link["anchor"] not in anchors(target.read_text()):
            broken.append(f"{link[0]}: no heading #{link['anchor']} in {target.name}")
    assert not broken, f"docs/{path.name}: " + "; ".join(broken)


def test_a_broken_link_or_anchor_is_caught(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A page\n\n## Step 1. Go!\n\n[ok](#step-1-go) [ok](b.md#b-b-1)\n")
    (tmp_path / "b.md").write_text(
        "# B `b`\n\n# B `b`\n\n[bad](a.md#nope) [gone](c.md) [web](https://x.y/#z)\n```\n[code](d.md)\n```\n"
    )
    test_relative_links_resolve(tmp_path / "a.md")
    with pytest.raises(AssertionError) as failure:
        test_relative_links_resolve(tmp_path / "b.md")
    message = str(failure.value)
    assert "no heading #nope in a.md" in message and "c.md" in message
    assert "d.md" not in message and "x.y" not in message
