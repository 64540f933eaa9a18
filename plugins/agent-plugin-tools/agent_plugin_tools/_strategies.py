"""Tool strategies: how the ready tool calls of one step run.

Both are frozen attrs classes, so two plugins registering equal strategies agree and
the kernel's registrar accepts them, while different ones are refused with an error
naming both plugins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import anyio
from attrs import field, frozen
from attrs.validators import ge, instance_of, optional

from agent_kernel import ToolCall


@frozen
class Sequential:
    """Run the calls one after another, in call order.

    Each call's ``agent_after_tool_execute`` fires before the next call starts, so a
    hook that stops the run prevents the remaining calls.

    .. versionadded:: 0.1
    """

    concurrent = False  # a class attribute, not an attrs field

    async def run(self, calls: Sequence[ToolCall], execute: Callable[[ToolCall], Awaitable[None]]) -> None:
        for call in calls:
            await execute(call)


@frozen
class Parallel:
    """Run the calls of a step concurrently, at most `max_concurrency` at a time.

    Each call runs in its own task of an anyio task group owned by the run, and the
    strategy returns when all have finished. With a bound, calls take their slots
    in call order: a call gets one only after every earlier call has. Whatever
    the completion order, the kernel folds results and hook patches in call order.

    Args:
        max_concurrency: the most calls of one step in flight at once (an anyio
            `CapacityLimiter` per step); None means no bound. Sync tools also share
            anyio's default worker-thread limiter (40 threads).

    .. versionadded:: 0.1
    """

    max_concurrency: int | None = field(default=None, validator=optional([instance_of(int), ge(1)]))
    concurrent = True  # a class attribute, not an attrs field

    async def run(self, calls: Sequence[ToolCall], execute: Callable[[ToolCall], Awaitable[None]]) -> None:
        if len(calls) == 1:
            await execute(calls[0])
            return
        limit = self.max_concurrency
        limiter = anyio.CapacityLimiter(limit) if limit is not None and limit < len(calls) else None

        async def one(call: ToolCall, slot: object) -> None:
            try:
                await execute(call)
            finally:
                if limiter is not None:
                    limiter.release_on_behalf_of(slot)

        async with anyio.create_task_group() as tg:
            for call in calls:
                slot = object()
                if limiter is not None:  # slots are taken in call order
                    await limiter.acquire_on_behalf_of(slot)
                tg.start_soon(one, call, slot, name=f"tool call {call.id}")
