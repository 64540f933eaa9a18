"""Instructions per step of the kernel and of the floor (bench/run.py's workload), by callgrind.

Wall-clock ratios on a shared virtual machine move by ±20 % from run to run; the
number of instructions executed does not. Each side runs twice under
``valgrind --tool=callgrind`` (1 and 1 + RUNS runs of K steps) and the difference
is divided by the steps, so start-up and imports cancel out.

    .venv/bin/python bench/instructions.py [--steps 10] [--runs 200]

Needs valgrind (``apt-get install valgrind``). Instructions are not time: the
kernel allocates more per step than the floor, so its time ratio is higher.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import trio

HERE = Path(__file__).parent


def workload(which: str, steps: int, runs: int) -> None:
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


def instructions(which: str, steps: int, runs: int) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__]
    result = subprocess.run(
        [*command, "--workload", which, "--steps", str(steps), "--runs", str(runs)],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per run (K)")
    parser.add_argument("--runs", type=int, default=200, help="runs counted")
    parser.add_argument("--workload", choices=["floor", "kernel"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workload:
        workload(args.workload, args.steps, args.runs)
        return 0
    if shutil.which("valgrind") is None:
        print("bench/instructions.py needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    per_step = {}
    for which in ("floor", "kernel"):
        base = instructions(which, args.steps, 1)
        more = instructions(which, args.steps, 1 + args.runs)
        per_step[which] = (more - base) / (args.runs * args.steps)
        print(f"{which:6} {per_step[which]:10,.0f} instructions per step (K={args.steps})")
    print(f"ratio  {per_step['kernel'] / per_step['floor']:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
