"""The README's example runs as it is and prints what the README says."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(tmp_path: pathlib.Path) -> None:
    readme = README.read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S)
    printed = re.search(r"It prints:\n\n```\n(.*?)```", readme, re.S)
    assert code and printed
    script = tmp_path / "example.py"
    script.write_text(code.group(1))
    env = {**os.environ, "AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", None)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == printed.group(1)
