"""Timeline rows for every kind of journal entry, and pending requests, from stored JSON."""

from __future__ import annotations

from typing import Any

from agent_plugin_inspector import RawEntry
from agent_plugin_inspector._source import pending_requests
from agent_plugin_inspector._timeline import rows


def _entries(*items: tuple[str, dict[str, Any]]) -> list[RawEntry]:
    return [RawEntry(i, 1, kind, {"type": kind, **data}) for i, (kind, data) in enumerate(items)]


CALL = {"id": "c1", "name": "shell", "arguments": {"cmd": "rm -rf /"}}
JOURNAL = _entries(
    ("Started", {"attempt": 1, "model": "m", "input": "clean up", "instructions": "be careful"}),
    ("Committed", {"phase": "run_start", "step": 0, "patches": [], "sources": []}),
    ("Committed", {"phase": "step_start", "step": 1, "patches": [], "sources": []}),
    ("Retried", {"what": "inference", "attempt": 1, "delay": 0.5, "error": "HTTP 503", "model": "m"}),
    (
        "Inferred",
        {
            "step": 1,
            "response": {
                "message": {"role": "assistant", "content": "", "tool_calls": [CALL]},
                "usage": {"input_tokens": 5, "output_tokens": 2},
                "stop_reason": "tool_use",
            },
        },
    ),
    (
        "Committed",
        {
            "phase": "before_tool_execute",
            "step": 1,
            "call_id": "c1",
            "patches": [{"type": "Suspend", "reason": "shell needs a person"}],
            "sources": ["approval"],
        },
    ),
    ("Ended", {"reason": "suspended", "error": None}),
    ("Started", {"attempt": 2, "model": "m", "input": None}),
    ("Decided", {"request_id": "r/1/c1", "decision": {"type": "Deny", "reason": "too dangerous"}}),
    ("ToolDone", {"step": 1, "call_id": "c1", "result": {"content": "Denied: too dangerous", "is_error": True}}),
    ("Committed", {"phase": "after_tool_execute", "step": 1, "call_id": "c1", "patches": [], "sources": []}),
    ("Committed", {"phase": "step_end", "step": 1, "patches": [], "sources": []}),
    ("Ended", {"reason": "error", "error": {"message": "boom", "plugin": "guard", "hook": "agent_step_end"}}),
)


def test_every_entry_kind_becomes_a_row() -> None:
    found = rows(JOURNAL)
    kinds = [r.kind for r in found]
    assert kinds == [
        "invocation",
        "message",  # instructions
        "message",  # input
        "phase",  # run_start
        "step",  # step 1 (its empty step_start is the heading)
        "retry",
        "tool_call",
        "patches",
        "outcome",
        "invocation",
        "decision",
        "tool_result",
        "phase",  # after_tool_execute and step_end share one line
        "outcome",
    ], kinds
    by_kind = {r.kind: r for r in found}
    assert (
        by_kind["retry"].title == "retry inference · attempt 1 in 0.5 s · model m"
        and by_kind["retry"].body == "HTTP 503"
    )
    assert by_kind["tool_call"].title == "asks for shell · c1" and '"cmd": "rm -rf /"' in by_kind["tool_call"].body
    assert by_kind["patches"].body == 'approval: Suspend {"reason": "shell needs a person"}'
    assert by_kind["patches"].tone == "warn" and by_kind["patches"].title.startswith("before_tool_execute (shell)")
    assert by_kind["decision"].title == "denied r/1/c1" and by_kind["decision"].body == "too dangerous"
    assert by_kind["tool_result"].error and by_kind["tool_result"].title == "shell failed · c1"
    assert found[12].title == "after_tool_execute (shell) · step_end"
    assert found[-1].error and found[-1].body == "guard.agent_step_end: boom"
    assert [r.seq for r in found] == sorted(r.seq for r in found)


def test_pending_requests_follow_suspensions_and_decisions() -> None:
    suspended = JOURNAL[:7]
    (request,) = pending_requests("r", 123.0, suspended)
    assert (request.id, request.tool, request.arguments, request.reason, request.plugin, request.step) == (
        "r/1/c1",
        "shell",
        {"cmd": "rm -rf /"},
        "shell needs a person",
        "approval",
        1,
    )
    assert request.since == 123.0
    assert pending_requests("r", 0.0, JOURNAL) == []  # decided
    waiting = _entries(
        (
            "Waiting",
            {
                "step": 2,
                "call_id": "c9",
                "requests": [{"id": "r/2/c9", "call": CALL, "tool": "shell", "reason": "asks", "step": 2}],
            },
        )
    )
    assert [p.id for p in pending_requests("r", 0.0, waiting)] == ["r/2/c9"]


def test_a_step_whose_step_start_was_quiet_gets_its_heading() -> None:
    """Journal format 3 omits phases no plugin implements: a step may begin with its
    `Inferred` entry, and the timeline still heads it (once)."""
    response = {"message": {"role": "assistant", "content": "hi", "tool_calls": []}, "usage": {}}
    quiet = _entries(
        ("Started", {"attempt": 1, "model": "m", "input": "hello", "quiet": ["run_start", "step_start"]}),
        ("Inferred", {"step": 1, "response": {**response, "stop_reason": "tool_use"}}),
        ("ToolDone", {"step": 1, "call_id": "c1", "result": {"content": "ok", "is_error": False}}),
        ("Committed", {"phase": "run_end", "step": 1, "patches": [], "sources": []}),
        ("Inferred", {"step": 2, "response": {**response, "stop_reason": "end_turn"}}),
        ("Ended", {"reason": "completed", "error": None}),
    )
    found = rows(quiet)
    assert [(r.title, r.step) for r in found if r.kind == "step"] == [("Step 1", 1), ("Step 2", 2)]
    assert next(i for i, r in enumerate(found) if r.kind == "step" and r.step == 2) == next(
        i for i, r in enumerate(found) if r.seq == 4
    ), "the heading comes before the step's first entry"
