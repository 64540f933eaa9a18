"""The code of the docs runs: every ```python block of ``docs/*.md`` and of README.md.

The blocks of one ``docs/*.md`` file run in order, in one namespace, in a fresh
interpreter whose working directory is empty, with no ``AGENT_KERNEL_*`` variable set.
A block that raises fails the file's test with a traceback pointing at the Markdown
file and line. README.md has a first agent and a section per plugin (one for every
distribution under ``plugins/``); each section's program runs alone, the same way,
and must print what the ```text block after it shows (``...`` stands for any text,
such as what a real model says). Relative links between the pages, and their
#anchors, must resolve.
"""

from __future__ import annotations

import doctest
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


def run_blocks(path: Path, cwd: Path, blocks: list[tuple[int, str]] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `blocks` (default: the python blocks of `path`) in one namespace, in a child interpreter at `cwd`.

    The child sees none of the ``AGENT_KERNEL_*``, ``OPENAI_*`` and ``ANTHROPIC_*``
    variables of this process: what a page shows must not depend on them.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_KERNEL_", "OPENAI_", "ANTHROPIC_"))}
    payload = json.dumps(python_blocks(path.read_text()) if blocks is None else blocks)
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


# ---------------------------------------------------------------------- README.md

README = ROOT / "README.md"
PLUGINS = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())
SECTION_HEADING = re.compile(r"### `(?P<name>agent-plugin-[a-z0-9-]+)`$")


def sections(markdown: str) -> dict[str, tuple[int, str]]:
    """README's plugin sections by distribution: (0-based line of the heading, the section's text).

    A section runs from its ``### `agent-plugin-<name>``` heading to the next heading of
    level 1 to 3 (a heading shown inside a code block is none).
    """
    lines, headings = markdown.split("\n"), prose(markdown).split("\n")
    found: dict[str, tuple[int, str]] = {}
    start = name = None
    for i, heading in enumerate([*headings, "# end"]):
        if re.match(r"#{1,3} ", heading):
            if name is not None and start is not None:
                found[name] = (start, "\n".join(lines[start:i]))
            match = SECTION_HEADING.match(heading)
            start, name = i, (match["name"] if match else None)
    return found


def text_blocks(markdown: str) -> list[str]:
    """The ```text blocks of `markdown`."""
    lines = markdown.split("\n")
    return ["".join(f"{line}\n" for line in lines[a + 1 : b]) for a, b, info in fences(markdown) if info == "text"]


def test_readme_has_a_section_per_plugin() -> None:
    assert sorted(sections(README.read_text())) == PLUGINS


def test_agent_kernel_plugins_lists_every_plugin() -> None:
    cli = Path(sys.executable).with_name("agent-kernel")
    result = subprocess.run([str(cli), "plugins"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert sorted({row["distribution"] for row in json.loads(result.stdout)} & set(PLUGINS)) == PLUGINS


def test_readme_first_agent_runs(tmp_path: Path) -> None:
    (first_agent,) = [block for block in python_blocks(README.read_text()) if "trio.run(main)" in block[1]][:1]
    result = run_blocks(README, tmp_path, [first_agent])
    assert result.returncode == 0, result.stderr[-6000:]
    assert "RunStarted" in result.stdout and "RunEnded" in result.stdout


@pytest.mark.parametrize("plugin", PLUGINS)
def test_readme_plugin_example_prints_what_it_shows(plugin: str, tmp_path: Path) -> None:
    start, section = sections(README.read_text())[plugin]
    blocks, shown = python_blocks(section), text_blocks(section)
    assert len(blocks) == 1 and len(shown) == 1, f"README's {plugin} section needs one python and one text block"
    (line, code), (expected,) = blocks[0], shown
    result = run_blocks(README, tmp_path, [(start + line, code)])
    assert result.returncode == 0, f"README.md, {plugin}:\n{result.stderr[-6000:]}"
    assert doctest.OutputChecker().check_output(expected, result.stdout, doctest.ELLIPSIS), (
        f"README.md, {plugin}: the example printed\n{result.stdout}\nbut the README shows\n{expected}"
    )


def test_a_readme_section_ends_at_the_next_heading() -> None:
    markdown = "# T\n\n### `agent-plugin-a`\n\n```sh\n### `agent-plugin-b`\n```\n## Next\n### `agent-plugin-c`\nc"
    assert sections(markdown) == {
        "agent-plugin-a": (2, "### `agent-plugin-a`\n\n```sh\n### `agent-plugin-b`\n```"),
        "agent-plugin-c": (8, "### `agent-plugin-c`\nc"),
    }


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


@pytest.mark.parametrize("path", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for link in LINK.finditer(prose(path.read_text())):
        target = (path.parent / link["path"]).resolve() if link["path"] else path
        if not target.exists():
            broken.append(f"{link[0]}: no file {target}")
        elif link["anchor"] and target.suffix == ".md" and link["anchor"] not in anchors(target.read_text()):
            broken.append(f"{link[0]}: no heading #{link['anchor']} in {target.name}")
    assert not broken, f"{path.name}: " + "; ".join(broken)


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
