"""Running ``agent-kernel jobs`` in real subprocesses."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from jobs_testkit import HERE


def env() -> dict[str, str]:
    """The environment of a subprocess: jobs_testkit importable, no plugin filters."""
    values = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_KERNEL_")}
    values["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    return values


def command(db: pathlib.Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "agent_kernel", "jobs", "--db", str(db), *args]


def jobs(db: pathlib.Path, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``agent-kernel jobs --db DB ARGS...`` to completion."""
    done = subprocess.run(command(db, *args), capture_output=True, text=True, env=env(), timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"agent-kernel jobs {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done


def start_worker(db: pathlib.Path, *args: str) -> subprocess.Popen[str]:
    """Start ``agent-kernel jobs work`` with the test factory, in the background."""
    return subprocess.Popen(
        command(db, "work", "--factory", "jobs_testkit:cli_factory", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )


def until(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll `condition` until it is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def lines(path: pathlib.Path) -> list[str]:
    return path.read_text().split("\n")[:-1] if path.exists() else []
