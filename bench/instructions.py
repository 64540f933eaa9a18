"""Instructions per step of the kernel and of the floor (bench/run.py's workload), by callgrind.

Wall-clock ratios on a shared virtual machine move by ±20 % from run to run; the
number of instructions executed does not. Each side runs twice under
``valgrind --tool=callgrind`` (1 and 1 + RUNS runs of K steps) and the difference
is divided by the steps, so start-up and imports cancel out.

    .venv/bin/python bench/instructions.py [--steps 10] [--runs 200]

Needs valgrind (``apt-get install valgrind``). Instructions are not time: the
kernel allocates more per step than the floor, so its time ratio is higher.

``per_step`` and ``collected`` are the one implementation of the counting and the
differencing: ``bench/peers.py --instructions`` imports them for its rows.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).parent
NO_VALGRIND = "needs valgrind (apt-get install valgrind)"


def have_valgrind() -> bool:
    return shutil.which("valgrind") is not None


def collected(command: list[str]) -> int:
    """Instructions callgrind counts while `command` runs to its end (which must succeed).

    PYTHONHASHSEED is fixed so that two processes hash (and so probe dicts and sets) alike.
    """
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed under callgrind:\n{result.stderr[-4000:]}")
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def per_step(command: list[str], steps: int, runs: int) -> float:
    """Instructions per step of `command --steps K --runs N`, a process doing N whole runs of K steps.

    Counted at N = 1 and N = 1 + runs; the difference, divided by runs * K, leaves out
    start-up, imports and whatever the first run alone pays (caches, first-use imports).
    The two processes run side by side: counts do not depend on what else runs.
    """
    commands = [[*command, "--steps", str(steps), "--runs", str(n)] for n in (1, 1 + runs)]
    with ThreadPoolExecutor(2) as pool:
        base, more = pool.map(collected, commands)
    return (more - base) / (runs * steps)


def workload(which: str, steps: int, runs: int) -> None:
    import trio

    sys.path.insert(0, str(HERE))
    import run as bench

    if which == "floor":
        pm = bench.floor_manager()

        async def main() -> None:
            for _ in range(runs):
                await bench.floor_run(pm, steps)
    else:
        agent = bench.kernel_agent(steps)

        async def main() -> None:
            for _ in range(runs):
                await agent.run("What is 2+3?")

    trio.run(main)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per run (K)")
    parser.add_argument("--runs", type=int, default=200, help="runs counted")
    parser.add_argument("--workload", choices=["floor", "kernel"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workload:
        workload(args.workload, args.steps, args.runs)
        return 0
    if not have_valgrind():
        print(f"bench/instructions.py {NO_VALGRIND}", file=sys.stderr)
        return 2
    counts = {}
    for which in ("floor", "kernel"):
        counts[which] = per_step([sys.executable, __file__, "--workload", which], args.steps, args.runs)
        print(f"{which:6} {counts[which]:10,.0f} instructions per step (K={args.steps})")
    print(f"ratio  {counts['kernel'] / counts['floor']:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
