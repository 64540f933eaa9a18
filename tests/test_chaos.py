"""A bounded run of tests/chaos.py in CI: worker processes resuming the same runs at once,
killed and paused at random; every promise of DESIGN §5.3-5.6 counted, all zero."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHAOS = Path(__file__).with_name("chaos.py")


def test_contention_chaos_keeps_every_promise(tmp_path: Path) -> None:
    args = ["--runs", "40", "--workers", "4", "--seconds", "40", "--dir", str(tmp_path)]
    done = subprocess.run([sys.executable, str(CHAOS), "chaos", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["runs"] == 40 and figures.get("kills", 0) > 0 and figures.get("pauses", 0) > 0, figures
    assert figures.get("worker_tracebacks", 0) == 0, (tmp_path, figures)
    broken = {k: v for k, v in figures.items() if k not in ("runs", "kills", "pauses") and v}
    assert broken == {}, figures
