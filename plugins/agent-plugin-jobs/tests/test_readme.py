"""The README's example runs and prints what it says."""

from __future__ import annotations

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_example_runs(capsys):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 1)[1] for line in out[:2]] == [
        "completed llamas: done 3/3 steps",
        "completed alpacas: done 3/3 steps",
    ]
    assert out[2] == str(
        [
            (None, "queued"),
            ("queued", "running"),
            ("running", "paused"),
            ("paused", "queued"),
            ("queued", "running"),
            ("running", "completed"),
        ]
    )
