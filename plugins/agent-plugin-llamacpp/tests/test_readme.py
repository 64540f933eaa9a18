"""The README's examples: the offline one runs on the real model, every Python block compiles."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def test_every_python_block_compiles() -> None:
    blocks = BLOCK.findall(README.read_text())
    assert len(blocks) == 2
    for block in blocks:
        compile(block, "README.md", "exec")


def test_the_offline_example_runs(tmp_path: Path) -> None:
    text = README.read_text()
    (example,) = BLOCK.findall(text[text.index("<!-- offline-example -->") :])[:1]
    script = tmp_path / "example.py"
    script.write_text(example)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    # The model's words are its own; the protocol is not: the tool ran on its arguments, the run completed.
    assert any(re.fullmatch(r"\[add -> -?\d+\]", line) for line in lines), out.stdout
    assert lines[-1] == "completed 2 1", out.stdout
