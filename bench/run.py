"""Kernel overhead benchmarks (DESIGN §7), measured as ratios within one process.

Workload: a scripted model asking for one `add` tool call per step, 8 no-op plugins
implementing every phase hook, the in-memory journal. Floor: a bare trio loop doing
the same work (same model and tool coroutines, a list of messages) with 8 plain
pluggy hook calls per step into the same 8 no-op plugins.

    ./dev bench            # or: python bench/run.py [--quick]

Prints per-step µs, ratio to the floor, step cost at K=1000 vs K=10, 1000
concurrent runs (wall ratio to the floor, KiB per in-flight run) and import time.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import time
import tracemalloc
from typing import Any

import pluggy
import trio

from agent_kernel import Agent, Message, Response, ToolCall, ToolResult, ToolSpec, Usage, hookimpl
from agent_kernel.hookspecs import PHASES

# DESIGN §7's kernel-alone budget, as tightened for kernel 0.2 (0.1's was 2.0, 1.2, 3.0, 16 KiB, 150 ms)
BUDGET = {"step_ratio": 1.5, "flat_ratio": 1.1, "concurrent_ratio": 2.5, "kib_per_run": 8.0, "import_ms": 100.0}

# ------------------------------------------------------------------ shared work


class BenchModel:
    """A scripted model: `add` once per step for `steps - 1` steps, then an answer."""

    name = "bench-model"

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.call = Response(
            Message("assistant", "", (ToolCall("c1", "add", {"a": 2, "b": 3}),)), Usage(10, 5, 1), "tool_use"
        )
        self.done = Response(Message("assistant", "5"), Usage(10, 1, 1))

    @hookimpl
    def agent_register_models(self, models: Any) -> None:
        models.add("bench", self)

    async def infer(self, request: Any, deltas: Any) -> Response:
        return self.done if request.messages[-1].role == "tool" and _step_of(request) >= self.steps else self.call


def _step_of(request: Any) -> int:
    return (len(request.messages) - 1) // 2 + 1


async def add(arguments: Any, ctx: Any) -> ToolResult:
    return ToolResult(str(arguments["a"] + arguments["b"]))


class Sequential:
    concurrent = False

    async def run(self, calls: Any, execute: Any) -> None:
        for call in calls:
            await execute(call)


class AddTool:
    name = "bench-tools"

    @hookimpl
    def agent_register_tools(self, tools: Any) -> None:
        tools.add(ToolSpec("add", "Add two numbers", {"type": "object"}), add)

    @hookimpl
    def agent_register_runtime(self, runtime: Any) -> None:
        runtime.set_tool_strategy(Sequential())


def noop_plugin(i: int) -> object:
    """A plugin implementing every phase hook, doing nothing."""
    ns: dict[str, Any] = {"name": f"noop{i}"}
    for phase in PHASES:
        ns["agent_" + phase] = hookimpl(lambda self, ctx: None)
    return type(f"Noop{i}", (), ns)()


# ------------------------------------------------------------------ floor

_floor_spec = pluggy.HookspecMarker("floor")
_floor_impl = pluggy.HookimplMarker("floor")


class FloorSpec:
    pass


for _name in ("h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8"):
    setattr(FloorSpec, _name, _floor_spec(lambda ctx: None))


def floor_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("floor")
    pm.add_hookspecs(FloorSpec)
    for i in range(8):
        ns = {n: _floor_impl(lambda self, ctx: None) for n in ("h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8")}
        pm.register(type(f"F{i}", (), ns)(), name=f"f{i}")
    return pm


async def floor_run(pm: pluggy.PluginManager, steps: int) -> list[Message]:
    """The same work as a kernel run, with no kernel: 8 hook calls per step."""
    h = pm.hook
    model = BenchModel(steps)
    messages = [Message("user", "What is 2+3?")]
    while True:
        h.h1(ctx=messages)
        h.h2(ctx=messages)
        response = await model.infer(_FloorRequest(messages), None)
        messages.append(response.message)
        h.h3(ctx=messages)
        for call in response.message.tool_calls:
            h.h4(ctx=call)
            h.h5(ctx=call)
            result = await add(call.arguments, None)
            messages.append(Message("tool", result.content, tool_call_id=call.id))
            h.h6(ctx=result)
        h.h7(ctx=messages)
        if not response.message.tool_calls:
            h.h8(ctx=messages)
            return messages


class _FloorRequest:
    __slots__ = ("messages",)

    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages


# ------------------------------------------------------------------ measurements


def kernel_agent(steps: int) -> Agent:
    plugins = [BenchModel(steps), AddTool(), *(noop_plugin(i) for i in range(8))]
    return Agent(model="bench", plugins=plugins, autoload=False, max_steps=None)


def measure_steps(k: int, repeat: int) -> tuple[float, float]:
    """Best µs per step of the floor and the kernel, for runs of `k` steps.

    Floor and kernel samples alternate and the minimum is kept, so load from other
    processes inflates neither side of the ratio.
    """
    pm = floor_manager()
    agent = kernel_agent(k)
    runs = max(1, 2000 // k)

    async def floor() -> None:
        for _ in range(runs):
            await floor_run(pm, k)

    async def kernel() -> None:
        for _ in range(runs):
            outcome = await agent.run("What is 2+3?")
            assert outcome.reason == "completed", outcome

    best = {floor: float("inf"), kernel: float("inf")}
    for _ in range(repeat):
        for fn in (floor, kernel):
            t0 = time.perf_counter()
            trio.run(fn)
            best[fn] = min(best[fn], (time.perf_counter() - t0) / (runs * k) * 1e6)
    return best[floor], best[kernel]


def measure_concurrent(runs: int, steps: int) -> tuple[float, float, float]:
    pm = floor_manager()
    agent = kernel_agent(steps)

    async def floor() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(runs):
                nursery.start_soon(floor_run, pm, steps)

    async def kernel() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(runs):
                nursery.start_soon(agent.run, "What is 2+3?")

    def wall(fn: Any) -> float:
        samples = []
        for _ in range(3):
            gc.collect()
            t0 = time.perf_counter()
            trio.run(fn)
            samples.append(time.perf_counter() - t0)
        return min(samples)

    floor_s, kernel_s = wall(floor), wall(kernel)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    trio.run(kernel)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # the journal keeps every finished run; peak is reached with all runs in flight
    return floor_s, kernel_s, (peak - base) / runs / 1024


def measure_import_ms() -> float:
    def best(code: str) -> float:
        samples = []
        for _ in range(7):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            samples.append(time.perf_counter() - t0)
        return min(samples) * 1000

    return best("import agent_kernel") - best("pass")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (for CI smoke runs)")
    args = parser.parse_args()
    repeat = 3 if args.quick else 15

    floor10, kernel10 = measure_steps(10, repeat)
    floor1000, kernel1000 = measure_steps(1000, repeat)
    floor_c, kernel_c, kib = measure_concurrent(1000, 5)
    import_ms = measure_import_ms()

    figures = {
        "step_ratio": kernel10 / floor10,
        "flat_ratio": kernel1000 / kernel10,
        "concurrent_ratio": kernel_c / floor_c,
        "kib_per_run": kib,
        "import_ms": import_ms,
    }
    print(f"floor per step (K=10):        {floor10:8.1f} µs")
    print(
        f"kernel per step (K=10):       {kernel10:8.1f} µs   ratio {figures['step_ratio']:.2f}  (budget ≤ {BUDGET['step_ratio']})"
    )
    print(
        f"kernel per step (K=1000):     {kernel1000:8.1f} µs   K=1000/K=10 {figures['flat_ratio']:.2f}  (budget ≤ {BUDGET['flat_ratio']})"
    )
    print(f"floor per step (K=1000):      {floor1000:8.1f} µs")
    print(f"1000 runs x 5 steps, floor:   {floor_c * 1000:8.1f} ms")
    print(
        f"1000 runs x 5 steps, kernel:  {kernel_c * 1000:8.1f} ms   ratio {figures['concurrent_ratio']:.2f}  (budget ≤ {BUDGET['concurrent_ratio']})"
    )
    print(f"memory per in-flight run:     {kib:8.1f} KiB  (budget ≤ {BUDGET['kib_per_run']})")
    print(f"import agent_kernel:          {import_ms:8.1f} ms   (budget ≤ {BUDGET['import_ms']})")
    over = [name for name, value in figures.items() if value > BUDGET[name]]
    if over:
        print("OVER BUDGET: " + ", ".join(over))
        return 1
    print("all within budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
