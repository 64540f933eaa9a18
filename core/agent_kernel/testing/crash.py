"""Fault injection that kills the process: for crash-safety tests of journals and tools.

`CrashingJournal` wraps any journal and calls ``os._exit`` at the n-th append,
before or after the entries are written: every commit boundary of a run can be
hit. `CrashInTool` kills the process inside a tool call, after its intent was
journaled, either before the tool runs or after it ran but before its result is
journaled. Run the agent in a subprocess, let it die, and resume it in a fresh one.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

from .._registry import RuntimeRegistrar
from .._state import ToolCall
from ..hookspecs import hookimpl
from ..journal import Codec, Entry, Journal

__all__ = ["CrashInTool", "CrashingJournal", "UseJournal"]

CRASH_EXIT_CODE = 137


class CrashingJournal:
    """A journal that dies at its `at`-th append (counting from 1) in this process.

    `when="before"` dies before the entries are written (they are lost), `"after"`
    dies once they are durable but before the kernel's next side effect. With
    ``at=None`` it never dies and only counts (`appends`).
    """

    def __init__(self, inner: Journal, *, at: int | None = None, when: Literal["before", "after"] = "before") -> None:
        self.inner = inner
        self.at = at
        self.when = when
        self.appends = 0

    def bind(self, codec: Codec) -> None:
        self.inner.bind(codec)

    async def claim(self, run_id: str) -> int:
        return await self.inner.claim(run_id)

    async def append(self, run_id: str, attempt: int, entries: Sequence[Entry], *, at: int) -> None:
        self.appends += 1
        if self.appends == self.at and self.when == "before":
            os._exit(CRASH_EXIT_CODE)
        await self.inner.append(run_id, attempt, entries, at=at)
        if self.appends == self.at and self.when == "after":
            os._exit(CRASH_EXIT_CODE)

    async def load(self, run_id: str) -> list[Entry]:
        return await self.inner.load(run_id)

    async def runs(self) -> list[str]:
        return await self.inner.runs()


class UseJournal:
    """A plugin making `journal` the agent's journal (for journals that are not plugins)."""

    name = "use-journal"

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        runtime.set_journal(self.journal)


class CrashInTool:
    """A plugin that kills the process inside the first call of tool `name`.

    `when="enter"`: after the intent is journaled, before the tool runs.
    `when="exit"`: after the tool ran (its side effect happened), before its result
    is journaled: the outcome is unknown to the journal.
    """

    name = "crash-in-tool"

    def __init__(self, tool: str, *, when: Literal["enter", "exit"] = "exit") -> None:
        self.tool = tool
        self.when = when

    @hookimpl
    def agent_wrap_tool_call(self, call: ToolCall) -> Any:
        if call.name != self.tool:
            return None
        return self._crash()

    @asynccontextmanager
    async def _crash(self) -> AsyncIterator[None]:
        if self.when == "enter":
            os._exit(CRASH_EXIT_CODE)
        yield
        os._exit(CRASH_EXIT_CODE)
