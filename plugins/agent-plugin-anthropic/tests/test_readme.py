"""The README's examples: the offline one runs, every Python block at least compiles."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def test_every_python_block_compiles() -> None:
    blocks = BLOCK.findall(README.read_text())
    assert len(blocks) == 3
    for block in blocks:
        compile(block, "README.md", "exec")


def test_the_offline_example_runs(tmp_path: Path) -> None:
    text = README.read_text()
    (offline,) = BLOCK.findall(text[text.index("<!-- offline-example -->") :])[:1]
    script = tmp_path / "example.py"
    script.write_text(offline)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_KERNEL_", "ANTHROPIC_"))}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "Let me add.2 + 3 = 5."
    assert lines[1] == (
        "{'role': 'user', 'content': [{'type': 'tool_result', 'tool_use_id': 'toolu_fake_1', "
        "'content': '5', 'is_error': False}]}"
    )
