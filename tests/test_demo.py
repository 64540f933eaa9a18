"""``agent-kernel demo``: it tells the whole story, in real processes, quickly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def demo(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "agent_kernel", "demo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )
    return done, time.monotonic() - started


def test_the_demo_runs_pauses_crashes_resumes_and_sums_up() -> None:
    done, seconds = demo("--fast")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    expected_in_order = [
        "① The run starts in this process.",
        "model asks for 2 tool call(s): get_weather, convert",
        "← get_weather: sunny, 24°C",
        "⏸ approval needed [demo-trip/2/call_2_1] book_hotel",
        "── RunEnd: suspended",
        "② A human approves the booking",
        "✔ approved demo-trip/2/call_2_1",
        "── RunStart (attempt 2, resumed)",
        "← book_hotel: Booked Hotel Avenida, Lisbon, 2 nights",
        "→ local_events(city='Lisbon')",
        "💥 the second process died (exit code 137)",
        "③ This process reopens",
        "The last one is the intent of call call_3_1 (local_events)",
        "── RunStart (attempt 3, resumed)",
        "← local_events: Fado night in Alfama",
        "assistant: Lisbon is sunny at 24°C",
        "── RunEnd: completed",
        "What the kernel did",
        "invocations: 3",
        "phases committed: run_start ×3, step_start ×4",
        "plugin patches:   Suspend ×1",
        "model requests:   4 for 4 recorded turns",
        "tool runs:        get_weather ×1, convert ×1, book_hotel ×1, local_events ×2",
    ]
    position = 0
    for line in expected_in_order:
        found = out.find(line, position)
        assert found >= 0, f"{line!r} missing after position {position} in:\n{out}"
        position = found + len(line)
    assert "\x1b[" not in out  # NO_COLOR
    assert seconds < 10, f"the demo took {seconds:.1f} s"


def test_the_demo_explains_a_missing_sqlite_plugin(tmp_path: Path) -> None:
    blocker = tmp_path / "agent_plugin_sqlite"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('not installed')\n")
    # as if not installed: the module does not import, and its entry point is not loaded
    env = {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    done, _ = demo("--fast", env=env)
    assert done.returncode == 1
    assert "the demo needs agent-plugin-sqlite: install it" in done.stderr


def test_the_watchable_demo_stays_under_ten_seconds() -> None:
    done, seconds = demo()
    assert done.returncode == 0, done.stderr
    assert seconds < 10, f"the demo took {seconds:.1f} s"
