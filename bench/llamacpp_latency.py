"""Latency of agent-plugin-llamacpp: load time, time to first token, tokens per second.

Usage::

    python bench/llamacpp_latency.py [--rounds 10] [--max-tokens 64] [--model gemma-3-270m]

Under trio, medians over the rounds:

1. Loading the model (first `load`, in a worker thread).
2. Straight through llama-cpp-python (``create_chat_completion(stream=True)`` in the
   calling thread): time to the first streamed piece and generation speed.
3. Through ``Agent.stream`` → `LlamaCppExecutor` → ``TextDelta`` events (worker thread,
   one event-loop hand-off per piece): the same two figures, as the event loop sees them.

Rounds alternate 2 and 3 on the same loaded model, so machine load affects both alike,
and alternate two prompts, so no measurement reuses the previous one's prompt cache.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import trio

from agent_kernel import Agent, events
from agent_plugin_llamacpp import LlamaCpp, LlamaCppExecutor

PROMPTS = ("Write a short story about a cat.", "Tell me a tale about a brave dog.")


def direct(executor: LlamaCppExecutor, max_tokens: int, prompt: str) -> tuple[float, float, int]:
    """(first piece s, tokens/s after it, pieces) straight through llama-cpp-python."""
    llama = executor._shared.llama
    assert llama is not None
    started = time.perf_counter()
    first = None
    pieces = 0
    for chunk in llama.create_chat_completion(
        [{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0, stream=True
    ):
        if chunk["choices"][0]["delta"].get("content"):
            pieces += 1
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None
    return first - started, (pieces - 1) / (end - first), pieces


async def through_kernel(agent: Agent, prompt: str) -> tuple[float, float, int]:
    started = time.perf_counter()
    first = last = None
    pieces = 0
    async with agent.stream(prompt) as stream:
        async for event in stream:
            if isinstance(event, events.TextDelta):
                pieces += 1
                last = time.perf_counter()
                if first is None:
                    first = last
    assert first is not None and last is not None and stream.outcome is not None
    assert stream.outcome.reason == "completed", stream.outcome.error
    return first - started, (pieces - 1) / (last - first), pieces


async def main(rounds: int, max_tokens: int, model: str) -> None:
    plugin = LlamaCpp(settings={"max_tokens": max_tokens, "temperature": 0})
    executor = plugin.executor(model)
    started = time.perf_counter()
    await executor.load()
    print(f"model {executor.model_path} (chat format {executor.chat_format_in_use})")
    print(f"load: {time.perf_counter() - started:.2f} s (in a worker thread)")
    agent = Agent(model=f"llamacpp:{model}", plugins=[plugin], autoload=False)
    a: list[tuple[float, float, int]] = []
    b: list[tuple[float, float, int]] = []
    for _ in range(rounds):
        a.append(await trio.to_thread.run_sync(direct, executor, max_tokens, PROMPTS[0]))
        b.append(await through_kernel(agent, PROMPTS[1]))

    def show(label: str, rows: list[Any]) -> None:
        ttft = statistics.median(r[0] for r in rows)
        tps = statistics.median(r[1] for r in rows)
        pieces = statistics.median(r[2] for r in rows)
        print(f"{label}: first piece {ttft * 1000:.0f} ms, {tps:.1f} tokens/s, {pieces:.0f} pieces (medians)")

    show("llama-cpp-python directly  ", a)
    show("Agent.stream -> TextDelta  ", b)
    stats = executor.last_stats
    if stats is not None:
        print(f"last kernel inference: {stats}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--model", default="gemma-3-270m")
    args = parser.parse_args()
    trio.run(main, args.rounds, args.max_tokens, args.model)
