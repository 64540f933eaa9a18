"""Latency of agent-plugin-openai: time to first token, kernel vs direct httpx.

Usage::

    python bench/openai_latency.py [--rounds 15] [--base-url URL]

Without ``--base-url`` it starts ``llama_cpp.server`` with Gemma 3 270M (as the
integration tests do). Two measurements, medians over the rounds, under trio:

1. Real server: time to first streamed text token (TTFT) and time to the end of the
   answer, (a) straight through ``httpx.AsyncClient.stream`` with the SSE lines
   parsed by hand, (b) through ``Agent.stream`` → `OpenAIExecutor` → ``TextDelta``.
   Both use one kept-alive client and the same request; rounds alternate a/b.
2. No network (``httpx.MockTransport`` serving a canned 20-chunk answer): what one
   turn costs in (a) httpx alone reading the lines, (b) `OpenAIExecutor.infer`,
   (c) a whole ``Agent.run`` of one turn. (b)-(a) is the executor's parsing, (c)-(b)
   the kernel's added latency per turn.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import trio

from agent_kernel import Agent, Message, Request, events
from agent_plugin_openai import OpenAI, OpenAIExecutor
from agent_plugin_openai.testing import gemma_model_path, llama_server, sse, text_chunks

PROMPT = "Write a short story about a cat."
SETTINGS = {"max_tokens": 24, "temperature": 0}


def _ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.median(values) * 1000:8.1f} ms (min {min(values) * 1000:.1f}, n={len(values)})"


def _us(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e6:8.1f} µs (min {min(values) * 1e6:.1f})"


async def direct(client: httpx.AsyncClient, base_url: str) -> tuple[float | None, float]:
    """Stream the answer with httpx alone; (time to first text, total time)."""
    body = {"model": "gemma", "messages": [{"role": "user", "content": PROMPT}], "stream": True,
            "stream_options": {"include_usage": True}, **SETTINGS}  # fmt: skip
    start = time.perf_counter()
    first = None
    async with client.stream("POST", base_url + "/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                continue  # read to the end, so the connection is reused (as the executor does)
            for choice in json.loads(data).get("choices") or ():
                if first is None and (choice.get("delta") or {}).get("content"):
                    first = time.perf_counter() - start
    return first, time.perf_counter() - start


async def kernel(agent: Agent) -> tuple[float | None, float]:
    """The same request through Agent.stream; (time to first TextDelta, total time)."""
    start = time.perf_counter()
    first = None
    async with agent.stream(PROMPT) as stream:
        async for event in stream:
            if first is None and isinstance(event, events.TextDelta):
                first = time.perf_counter() - start
    return first, time.perf_counter() - start


async def real_server(base_url: str, rounds: int) -> None:
    plugin = OpenAI(base_url, settings=SETTINGS)
    agent = Agent(model="openai:gemma", plugins=[plugin], autoload=False)
    results: dict[str, tuple[list[float], list[float]]] = {"direct httpx": ([], []), "kernel+plugin": ([], [])}
    async with httpx.AsyncClient(timeout=120) as client:
        for _ in range(2):  # warm up both paths (model caches, connections)
            await direct(client, base_url)
            await kernel(agent)
        for i in range(rounds):
            order: list[tuple[str, Callable[[], Awaitable[tuple[float | None, float]]]]] = [
                ("direct httpx", lambda: direct(client, base_url)),
                ("kernel+plugin", lambda: kernel(agent)),
            ]
            for name, fn in order if i % 2 == 0 else order[::-1]:
                first, total = await fn()
                if first is not None:
                    results[name][0].append(first)
                results[name][1].append(total)
    await plugin.aclose()
    print(f"\nReal server {base_url}, prompt {PROMPT!r}, {SETTINGS}, {rounds} rounds (median):")
    for name, (firsts, totals) in results.items():
        print(f"  {name:14} first token {_ms(firsts)}   whole answer {_ms(totals)}")
    d, k = results["direct httpx"][0], results["kernel+plugin"][0]
    if d and k:
        print(
            f"  TTFT difference (kernel - direct), medians: {(statistics.median(k) - statistics.median(d)) * 1000:+.2f} ms"
        )


async def no_network(rounds: int) -> None:
    body = sse(*text_chunks(*[f"w{i} " for i in range(20)]))

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    transport = httpx.MockTransport(serve)
    client = httpx.AsyncClient(transport=transport)

    async def httpx_only() -> None:
        async with client.stream("POST", "http://fake/v1/chat/completions", content=b"{}") as response:
            async for _ in response.aiter_lines():
                pass

    class Sink:
        def text(self, text: str) -> None:
            pass

        def tool_call(self, *args: Any) -> None:
            pass

    executor = OpenAIExecutor("fake", base_url="http://fake/v1", transport=transport)
    request = Request("openai:fake", (Message("user", PROMPT),), settings=SETTINGS)

    async def executor_only() -> None:
        await executor.infer(request, Sink())

    plugin = OpenAI("http://fake/v1", transport=transport, settings=SETTINGS)
    agent = Agent(model="openai:fake", plugins=[plugin], autoload=False)

    async def agent_run() -> None:
        await agent.run(PROMPT)

    async def agent_stream() -> None:
        async with agent.stream(PROMPT) as stream:
            async for _ in stream:
                pass

    timings: dict[str, list[float]] = {}
    cases = [
        ("httpx alone (read SSE lines)", httpx_only),
        ("OpenAIExecutor.infer", executor_only),
        ("Agent.run, one turn", agent_run),
        ("Agent.stream, one turn", agent_stream),
    ]
    for name, fn in cases:
        for _ in range(50):
            await fn()
        samples = []
        for _ in range(rounds * 20):
            start = time.perf_counter()
            await fn()
            samples.append(time.perf_counter() - start)
        timings[name] = samples
    await client.aclose()
    await plugin.aclose()
    await executor.aclose()
    print("\nNo network (httpx.MockTransport, 20 text chunks + usage), per turn (median):")
    for name, samples in timings.items():
        print(f"  {name:30} {_us(samples)}")
    med = {k: statistics.median(v) for k, v in timings.items()}
    print(
        f"  executor parsing over httpx:   {(med['OpenAIExecutor.infer'] - med['httpx alone (read SSE lines)']) * 1e6:+8.1f} µs"
    )
    print(
        f"  kernel over executor (run):    {(med['Agent.run, one turn'] - med['OpenAIExecutor.infer']) * 1e6:+8.1f} µs"
    )
    print(
        f"  kernel over executor (stream): {(med['Agent.stream, one turn'] - med['OpenAIExecutor.infer']) * 1e6:+8.1f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--base-url", help="an already running OpenAI-compatible server (default: start llama_cpp.server)"
    )
    args = parser.parse_args()
    trio.run(no_network, args.rounds)
    if args.base_url:
        trio.run(real_server, args.base_url, args.rounds)
    else:
        with llama_server(gemma_model_path()) as base_url:
            trio.run(real_server, base_url, args.rounds)


if __name__ == "__main__":
    main()
