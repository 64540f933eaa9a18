"""Benchmark: how long the `Redactor` takes on large and adversarial texts.

    .venv/bin/python plugins/agent-plugin-guardrails/bench_redaction.py            # 1 MB shapes, 50 MB shapes
    .venv/bin/python plugins/agent-plugin-guardrails/bench_redaction.py --mb 1 --big 0 --rules
    .venv/bin/python plugins/agent-plugin-guardrails/bench_redaction.py --run      # also a whole agent run

Prints, for each text shape, the seconds one redaction takes (best of `--repeat`),
and with ``--rules`` the seconds each built-in rule's scan takes on it. With
``--run`` it also times a scripted agent run whose tool returns the big text,
without and with `Guardrails` (the kernel redacts every entry and event it commits).

Seconds are CPU seconds of this process (`time.process_time`, all its threads), which
a loaded machine inflates much less than wall-clock seconds (``--wall`` for those);
agent runs print both.

Not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import random
import string
import time
from collections.abc import Callable

from agent_plugin_guardrails import Redactor, redact_structure
from agent_plugin_guardrails.redaction import RULES

LOG_LINE = "2026-12-07T15:00:{:02d}Z INFO worker-{} handled request id={} in {} ms path=/api/v1/items/{}\n"


def log_text(size: int) -> str:
    rng = random.Random(1)
    lines, n = [], 0
    while n < size:
        line = LOG_LINE.format(rng.randrange(60), rng.randrange(9), rng.randrange(10**9), rng.randrange(999), n)
        lines.append(line)
        n += len(line)
    return "".join(lines)[:size]


def base64_text(size: int) -> str:
    rng = random.Random(2)
    alphabet = string.ascii_letters + string.digits + "+/"
    return "".join(rng.choices(alphabet, k=size))


def shapes(size: int) -> dict[str, str]:
    """Secret-free texts of `size` characters, realistic and adversarial."""

    def rep(unit: str) -> str:
        return (unit * (size // len(unit) + 1))[:size]

    return {
        "log lines": log_text(size),
        "base64, no prefix": base64_text(size),
        "'a-' * N": rep("a-"),
        "'a_' * N": rep("a_"),
        "'sk-' * N": rep("sk-"),
        "'Bearer ' * N": rep("Bearer "),
        "'bearer\\t' * N": rep("bearer\t"),
        "'AKIA' * N": rep("AKIA"),
        "'password=\"' * N": rep('password="'),
        "'password ' * N": rep("password "),
        "'x://a:' * N": rep("x://a:"),
        "'eyJa.' * N": rep("eyJa."),
        "'-----BEGIN ' * N": rep("-----BEGIN "),
        "'ghp_' * N": rep("ghp_"),
        "whitespace": rep(" \t\n"),
        "'a' * N": rep("a"),
    }


CLOCK = time.process_time  # --wall: time.perf_counter


def best(fn: Callable[[Redactor], object], repeat: int) -> float:
    """The best time of `fn(redactor)`, each time with a new `Redactor` (it remembers
    the last long texts it redacted, which would make a repetition free)."""
    times = []
    for _ in range(repeat):
        redactor = Redactor()
        t0 = CLOCK()
        fn(redactor)
        times.append(CLOCK() - t0)
    return min(times)


def bench_redactor(size: int, repeat: int, per_rule: bool, only: str = "") -> None:
    unit = "CPU seconds" if CLOCK is time.process_time else "seconds"
    print(f"\n== Redactor on {size / 1e6:g} MB (best of {repeat}, {unit})")
    for name, text in shapes(size).items():
        if only not in name:
            continue
        seconds = best(lambda redactor, text=text: redactor(text), repeat)
        changed = Redactor()(text) is not text
        print(f"{name:22} {seconds:8.3f}{'  (redacted something)' if changed else ''}")
        if per_rule:
            for rule in RULES:
                rule_seconds = best(lambda _, rule=rule, text=text: list(rule.spans(text)), 1)
                if rule_seconds > 0.01:
                    print(f"    {rule.name:18} {rule_seconds:8.3f}")
    text = log_text(size)
    planted = text[: size // 2] + " sk-" + "A1b2" * 10 + " " + text[size // 2 :]
    seconds = best(lambda redactor: redactor(planted), repeat)
    print(f"{'log lines + 1 secret':22} {seconds:8.3f}")
    from agent_kernel import ToolResult
    from agent_kernel.journal import ToolDone

    entry = ToolDone(1, "call_1", ToolResult(text))
    seconds = best(lambda redactor: redact_structure(entry, redactor), repeat)
    print(f"{'ToolDone(log lines)':22} {seconds:8.3f}  (redact_structure)")

    def twice(redactor: Redactor) -> None:  # as the kernel does: the entry, then its event
        redact_structure(entry, redactor)
        t0 = CLOCK()
        redact_structure(entry, redactor)
        print(f"{'  the same, again':22} {CLOCK() - t0:8.3f}  (remembered)")

    best(twice, 1)


def bench_run(size: int) -> None:
    import trio

    from agent_kernel import Agent
    from agent_kernel.testing import ScriptedModel, text, tool_call
    from agent_plugin_guardrails import Guardrails
    from agent_plugin_tools import Toolbox

    output = log_text(size)

    def dump() -> str:
        """Return a big output."""
        return output

    async def run(guarded: bool, sqlite: bool) -> tuple[float, float]:
        import tempfile

        from agent_plugin_sqlite import SqliteJournal

        with tempfile.TemporaryDirectory() as tmp:
            model = ScriptedModel([tool_call("dump"), text("done")])
            plugins = [model, Toolbox([dump]), *([Guardrails()] if guarded else [])]
            if sqlite:
                plugins.append(SqliteJournal(f"{tmp}/runs.db"))
            agent = Agent(model="scripted", plugins=plugins, autoload=False)
            t0, c0 = time.perf_counter(), time.process_time()
            async with agent.stream("go") as events:
                async for _ in events:
                    pass
            assert events.outcome is not None and events.outcome.reason == "completed", events.outcome
            return time.perf_counter() - t0, time.process_time() - c0

    print(f"\n== agent run (streamed), a tool returning {size / 1e6:g} MB of log lines (wall s, CPU s)")
    for sqlite in (False, True):
        for guarded in (False, True):
            wall, cpu = trio.run(run, guarded, sqlite)
            journal = "SqliteJournal" if sqlite else "memory journal"
            print(f"{journal:15} {'with' if guarded else 'without':8} guardrails {wall:8.3f} {cpu:8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=1.0, help="size of the adversarial shapes (MB)")
    parser.add_argument("--big", type=float, default=50.0, help="size of the big run (MB); 0 skips it")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rules", action="store_true", help="time each built-in rule too")
    parser.add_argument("--run", action="store_true", help="time a whole agent run with a --big tool output")
    parser.add_argument("--only", default="", help="only the shapes whose name contains this")
    parser.add_argument("--wall", action="store_true", help="wall-clock seconds instead of CPU seconds")
    args = parser.parse_args()
    if args.wall:
        global CLOCK
        CLOCK = time.perf_counter
    if args.mb:
        bench_redactor(int(args.mb * 1e6), args.repeat, args.rules, args.only)
    if args.big:
        bench_redactor(int(args.big * 1e6), 1, args.rules, args.only)
        if args.run:
            bench_run(int(args.big * 1e6))


if __name__ == "__main__":
    main()
