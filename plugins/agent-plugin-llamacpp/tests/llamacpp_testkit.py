"""Helpers shared by the tests: a delta recorder, executors, the ``add`` tool, small plugins.

Gemma 3 270M is a base model: what it writes is mostly an echo of the prompt plus
junk, and not repeatable. No test looks at its wording; they check the protocol
(deltas, tool calls, usage, cancellation, timing).
"""

from __future__ import annotations

import time
from typing import Any

from agent_kernel import Message, Request, ToolSpec, hookimpl, patches
from agent_plugin_llamacpp import LlamaCppExecutor
from agent_plugin_tools import Toolbox

# A prompt Gemma 270M answers with some text nearly always (it mostly echoes it).
STORY = "Write a short story about a cat."
ADD = "What is 2+3? Use the add tool."

ADD_SPEC = ToolSpec(
    "add",
    "Add two integers.",
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)


def request(
    text: str = STORY, *, tools: tuple[ToolSpec, ...] = (), tool_choice: str = "auto", **settings: Any
) -> Request:
    """A one-message request; `settings` become `Request.settings`."""
    return Request("llamacpp:gemma-3-270m", (Message("user", text),), tools, tool_choice, settings)


class Recorder:
    """A `Deltas` sink that keeps every piece with the time it reached the event loop."""

    def __init__(self, tag: str = "") -> None:
        self.tag = tag
        self.pieces: list[tuple[float, str, str]] = []  # (time, kind, text)
        self.calls: list[tuple[int, str, str, str]] = []

    def text(self, text: str) -> None:
        self.pieces.append((time.perf_counter(), "text", text))

    def tool_call(self, index: int, call_id: str, name: str, arguments: str) -> None:
        self.pieces.append((time.perf_counter(), "tool", arguments))
        self.calls.append((index, call_id, name, arguments))

    @property
    def texts(self) -> list[str]:
        return [text for _, kind, text in self.pieces if kind == "text"]


def gemma(**options: Any) -> LlamaCppExecutor:
    """An executor for Gemma 3 270M with the suite's defaults (short answers)."""
    options.setdefault("settings", {"max_tokens": 24, "temperature": 0})
    return LlamaCppExecutor("gemma-3-270m", **options)


class AddTool:
    """The ``add`` tool, offered through `agent_plugin_tools.Toolbox`; `calls` records each call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, int]] = []

        def add(a: int, b: int) -> int:
            """Add two integers.

            Args:
                a: the first number.
                b: the second number.
            """
            self.calls.append({"a": a, "b": b})
            return a + b

        self.plugin = Toolbox([add])


class ForceOnce:
    """Forces the tool `tool` at step 1 only; later steps use the default ("auto")."""

    name = "force-once"

    def __init__(self, tool: str) -> None:
        self.tool = tool

    @hookimpl
    def agent_before_inference(self, ctx: Any) -> list[patches.Patch] | None:
        return [patches.ToolChoice(self.tool)] if ctx.step == 1 else None


class RunEnds:
    """Records the reason of every RunEnd."""

    name = "run-ends"

    def __init__(self) -> None:
        self.reasons: list[str] = []

    @hookimpl
    def agent_run_end(self, outcome: Any) -> None:
        self.reasons.append(outcome.reason)
