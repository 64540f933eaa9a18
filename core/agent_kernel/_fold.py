"""Pure functions from patches to state: `fold`, `merge_concurrent`, `resolve_call`."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

import attrs

from . import patches as p
from ._state import ApprovalRequest, RunState, StopInfo, ToolCall, replace_state
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
    changes: dict[str, Any] = {}
    data: dict[str, Any] | None = None
    for i, patch in enumerate(patch_list):
        if isinstance(patch, p.AppendMessages):
            changes["messages"] = changes.get("messages", state.messages).extend(patch.messages)
        elif isinstance(patch, p.SetData):
            if data is None:
                data = dict(state.data)
            data[patch.key.name] = patch.value
        elif isinstance(patch, p.IncrementData):
            if data is None:
                data = dict(state.data)
            key = patch.key
            data[key.name] = data.get(key.name, key.default) + patch.by
        elif isinstance(patch, p.InjectContext):
            changes["context"] = (*changes.get("context", state.context), patch.text)
        elif isinstance(patch, p.SetModel):
            changes["model"] = patch.model
        elif isinstance(patch, p.ToolChoice):
            changes["tool_choice"] = patch.choice
        elif isinstance(patch, p.ExcludeTools):
            changes["excluded_tools"] = changes.get("excluded_tools", state.excluded_tools) | patch.names
        elif isinstance(patch, p.OnlyTools):
            changes["only_tools"] = patch.names
        elif isinstance(patch, p.Stop):
            if changes.get("stop", state.stop) is None:
                changes["stop"] = StopInfo(patch.code, patch.detail)
        elif isinstance(patch, p.Finish):
            if changes.get("stop", state.stop) is None:
                changes["stop"] = StopInfo("finished", patch.detail, completed=True)
        elif isinstance(patch, p.SetWindow):
            changes["window_start"], changes["summary"] = patch.start, patch.summary
        elif isinstance(patch, p.ReplaceMessage):
            changes["messages"] = changes.get("messages", state.messages).replace(patch.index, patch.message)
        elif isinstance(patch, p.Suspend):
            if call is None:
                raise ValueError("Suspend needs the tool call it suspends")
            pending = changes.get("pending", state.pending)
            request_id = f"{state.run_id}/{state.step}/{call.id}"
            if all(r.id != request_id for r in pending):
                plugin = sources[i] if i < len(sources) else ""
                request = ApprovalRequest(request_id, call, call.name, patch.reason, state.step, plugin)
                changes["pending"] = (*pending, request)
    if data is not None:
        changes["data"] = MappingProxyType(data)
    return replace_state(state, **changes) if changes else state


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
