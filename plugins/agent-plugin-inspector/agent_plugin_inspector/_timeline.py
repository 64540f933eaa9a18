"""A run's journal entries as timeline rows, ready for the templates (plain data, no HTML)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from attrs import frozen

from ._source import RawEntry

__all__ = ["Row", "rows"]


@frozen
class Row:
    """One line of a run's timeline.

    Attributes:
        seq: the entry's position in the journal.
        step: the step it belongs to.
        kind: what the template draws: ``invocation``, ``step``, ``phase``, ``patches``,
            ``message``, ``tool_call``, ``tool_result``, ``waiting``, ``decision``, ``retry``, ``outcome``.
        title: a short heading.
        body: the main text (a message, a result), shown as preformatted text.
        detail: secondary text (arguments, usage, patches as JSON).
        error: the row shows a failure (an error result, a failed run).
        tone: a CSS hint (``ok``, ``warn``, ``bad``, ``muted``).
        attempt: the invocation (attempt) that wrote the entry.
    """

    seq: int
    step: int
    kind: str
    title: str
    body: str = ""
    detail: str = ""
    error: bool = False
    tone: str = ""
    attempt: int = 0


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=None)


def _patch_text(patch: dict[str, Any]) -> str:
    fields = {k: v for k, v in patch.items() if k != "type"}
    return f"{patch.get('type', '?')} {_json(fields)}" if fields else str(patch.get("type", "?"))


def rows(entries: Sequence[RawEntry], *, known_calls: dict[str, str] | None = None) -> list[Row]:
    """Timeline rows for `entries` (in journal order).

    Args:
        entries: a slice of one run's entries.
        known_calls: tool call id -> tool name learnt from earlier slices (updated in place).
    """
    names = known_calls if known_calls is not None else {}
    out: list[Row] = []
    step = 0
    for entry in entries:
        for row in _rows(entry, names, step):
            last = out[-1] if out else None
            if row.kind == "phase" and last is not None and last.step == row.step:
                if last.kind == "step" and row.title == "step_start":
                    continue  # the step's heading says it
                if last.kind == "phase":  # phases that changed nothing share one quiet line
                    out[-1] = attrs.evolve(last, title=f"{last.title} · {row.title}")
                    continue
            out.append(row)
        if out:
            step = out[-1].step
    return out


def _rows(entry: RawEntry, names: dict[str, str], step: int) -> Iterable[Row]:
    d, seq, a = entry.data, entry.seq, entry.attempt
    kind = entry.kind
    previous = step
    step = int(d.get("step", step) or 0) if "step" in d else step
    if step > previous and not (kind == "Committed" and d.get("phase") in ("step_start", "run_start", "run_end")):
        yield Row(seq, step, "step", f"Step {step}", attempt=a)  # its StepStart was quiet: not journaled
    if kind == "Started":
        resumed = int(d.get("attempt", 1)) > 1
        title = f"{'resumed' if resumed else 'started'} · attempt {d.get('attempt')} · model {d.get('model', '')}"
        yield Row(seq, step, "invocation", title, tone="muted", attempt=a)
        if d.get("instructions"):
            yield Row(seq, step, "message", "system", str(d["instructions"]), attempt=a)
        if d.get("input") is not None:
            yield Row(seq, step, "message", "user", str(d["input"]), attempt=a)
    elif kind == "Committed":
        phase = str(d.get("phase", ""))
        patches = d.get("patches") or []
        sources = d.get("sources") or []
        if phase == "step_start":
            yield Row(seq, step, "step", f"Step {step}", attempt=a)
        call = d.get("call_id")
        where = f"{phase}" + (f" ({names.get(call, call)})" if call else "")
        if patches:
            lines = [f"{sources[i] if i < len(sources) else '?'}: {_patch_text(p)}" for i, p in enumerate(patches)]
            tone = "warn" if any(p.get("type") in ("Block", "Suspend", "Stop") for p in patches) else ""
            yield Row(
                seq, step, "patches", f"{where} · {len(patches)} patch(es)", "\n".join(lines), tone=tone, attempt=a
            )
        else:
            yield Row(seq, step, "phase", where, tone="muted", attempt=a)
    elif kind == "Inferred":
        response = d.get("response") or {}
        message = response.get("message") or {}
        usage = response.get("usage") or {}
        detail = (
            f"{usage.get('input_tokens', 0)} in · {usage.get('output_tokens', 0)} out · "
            f"stop {response.get('stop_reason', '')}" + (f" · {response['model']}" if response.get("model") else "")
        )
        calls = message.get("tool_calls") or []
        if message.get("content") or not calls:
            yield Row(seq, step, "message", "assistant", str(message.get("content", "")), detail, attempt=a)
        for call in calls:
            names[str(call.get("id"))] = str(call.get("name"))
            yield Row(
                seq,
                step,
                "tool_call",
                f"asks for {call.get('name')} · {call.get('id')}",
                _json(call.get("arguments") or {}),
                detail if not message.get("content") else "",
                attempt=a,
            )
    elif kind == "Intended":
        call = str(d.get("call_id"))
        yield Row(
            seq, step, "tool_call", f"runs {names.get(call, call)} · {call}", _json(d.get("arguments") or {}), attempt=a
        )
    elif kind == "ToolDone":
        call = str(d.get("call_id"))
        result = d.get("result") or {}
        error = bool(result.get("is_error"))
        yield Row(
            seq,
            step,
            "tool_result",
            f"{names.get(call, call)} {'failed' if error else 'returned'} · {call}",
            str(result.get("content", "")),
            error=error,
            tone="bad" if error else "ok",
            attempt=a,
        )
    elif kind == "Waiting":
        requests = d.get("requests") or []
        text = "\n".join(f"{r.get('id')}: {r.get('tool')} — {r.get('reason')}" for r in requests)
        yield Row(seq, step, "waiting", "waits for a decision", text, tone="warn", attempt=a)
    elif kind == "Decided":
        decision = d.get("decision") or {}
        if decision.get("type") == "Approve":
            args = decision.get("arguments")
            yield Row(
                seq,
                step,
                "decision",
                f"approved {d.get('request_id')}",
                "with edited arguments " + _json(args) if args is not None else "",
                "by a person, through resume",
                tone="ok",
                attempt=a,
            )
        else:
            yield Row(
                seq,
                step,
                "decision",
                f"denied {d.get('request_id')}",
                str(decision.get("reason", "")),
                "by a person, through resume",
                tone="bad",
                attempt=a,
            )
    elif kind == "Retried":
        yield Row(
            seq,
            step,
            "retry",
            f"retry {d.get('what')} · attempt {d.get('attempt')} in {d.get('delay')} s"
            + (f" · model {d['model']}" if d.get("model") else ""),
            str(d.get("error", "")),
            tone="warn",
            attempt=a,
        )
    elif kind == "Ended":
        reason = str(d.get("reason", ""))
        failure = d.get("error") or None
        body = ""
        if isinstance(failure, dict):
            where = ".".join(str(x) for x in (failure.get("plugin"), failure.get("hook")) if x)
            body = (f"{where}: " if where else "") + str(failure.get("message", ""))
        tone = {"completed": "ok", "error": "bad", "suspended": "warn"}.get(reason, "muted")
        yield Row(seq, step, "outcome", f"ended: {reason}", body, error=reason == "error", tone=tone, attempt=a)
    else:
        yield Row(seq, step, "phase", kind, _json(d), attempt=a)
