"""Pure functions from patches to state: `fold`, `merge_concurrent`, `resolve_call`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from . import patches as p
from ._state import RunState, ToolCall
from .errors import PatchConflict


def fold(
    state: RunState, patch_list: Sequence[p.Patch], *, call: ToolCall | None = None, sources: Sequence[str] = ()
) -> RunState:
    """Apply `patch_list` to `state` in order and return the new state.

    Pure and deterministic: the same state and patches always give an equal state.
    Tool-scoped patches (Block, ProvideResult, RewriteArguments, Remind) leave the state
    as it is (`resolve_call` reads them); `Suspend` adds an approval request for `call`,
    naming the plugin that asked (from `sources`, parallel to `patch_list`, if given).
    """
    if not patch_list:
        return state
    folding = p.Folding(state, call)
    for i, patch in enumerate(patch_list):
        folding.source = sources[i] if i < len(sources) else ""
        patch.fold(folding)
    return folding.result()


def merge_concurrent(
    batches: Sequence[Sequence[p.Patch]],
    call_ids: Sequence[str],
    sources: Sequence[Sequence[str]] | None = None,
) -> list[list[p.Patch]]:
    """Merge patch lists of tool calls that ran concurrently on one snapshot.

    `batches[i]` belongs to `call_ids[i]`, in call order; `sources[i]`, if given,
    names the plugin that returned each patch of `batches[i]`. A `SetData` on a key
    that an earlier call of the batch also set follows the key's merge rule: "error"
    raises `PatchConflict` (naming both plugins when `sources` are given), "last"
    keeps the later value, "sum" replaces the later patch by
    `SetData(key, earlier + later)`, a function by `SetData(key, rule(earlier, later))`.
    One call setting a key twice is no conflict: its own patches fold in order.
    Everything else is unchanged.
    """
    written: dict[str, tuple[str, Any, str]] = {}
    merged: list[list[p.Patch]] = []
    for i, (call_id, batch) in enumerate(zip(call_ids, batches, strict=True)):
        out: list[p.Patch] = []
        origins = sources[i] if sources is not None else ()
        for j, patch in enumerate(batch):
            if isinstance(patch, p.SetData):
                key = patch.key
                plugin = origins[j] if j < len(origins) else ""
                if key.name in written and written[key.name][0] != call_id:
                    first_call, earlier, first_plugin = written[key.name]
                    rule = key.merge
                    if rule == "error":
                        raise PatchConflict(
                            f"tool calls {first_call!r}{_by(first_plugin)} and {call_id!r}{_by(plugin)} ran "
                            f"concurrently and both set {key.name!r}; give the StateKey a merge rule ('last', "
                            "'sum' or a function) or run the tools sequentially",
                            key=key.name,
                            calls=(first_call, call_id),
                            plugins=(first_plugin, plugin),
                        )
                    if rule == "sum":
                        patch = p.SetData(key, earlier + patch.value)
                    elif callable(rule):
                        patch = p.SetData(key, rule(earlier, patch.value))
                written[key.name] = (call_id, patch.value, plugin)
            out.append(patch)
        merged.append(out)
    return merged


def _by(plugin: str) -> str:
    return f" (SetData by plugin {plugin!r})" if plugin else ""


@attrs.frozen
class CallPlan:
    """What the before-hooks decided for one tool call."""

    action: str  # "run", "block", "provide", "suspend"
    arguments: Any = None
    content: str = ""
    is_error: bool = False


def resolve_call(call: ToolCall, patch_list: Sequence[p.Patch]) -> CallPlan:
    """Decide a tool call's fate from its BeforeToolExecute patches.

    The most restrictive decision wins, whatever the order: the first `Block`; else
    the first `ProvideResult`; else any `Suspend` suspends; else the call runs, with
    the arguments of the last `RewriteArguments`, if any.
    """
    arguments = call.arguments
    provided: p.ProvideResult | None = None
    suspend = False
    for patch in patch_list:
        if isinstance(patch, p.Block):
            return CallPlan("block", arguments, patch.reason, True)
        if isinstance(patch, p.ProvideResult):
            provided = provided or patch
        elif isinstance(patch, p.Suspend):
            suspend = True
        elif isinstance(patch, p.RewriteArguments):
            arguments = patch.arguments
    if provided is not None:
        return CallPlan("provide", arguments, provided.content, provided.is_error)
    return CallPlan("suspend" if suspend else "run", arguments)


def reminders(patch_list: Sequence[p.Patch]) -> tuple[str, ...]:
    """The `Remind` texts among `patch_list`, in order."""
    return tuple(patch.text for patch in patch_list if isinstance(patch, p.Remind))
