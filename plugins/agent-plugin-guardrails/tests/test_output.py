"""Output checks: on every final answer; retry with feedback (bounded) or block."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from agent_kernel import RunState
from agent_kernel.testing import FakeTools, check_phase_grammar, run_scripted, text, tool_call
from agent_plugin_guardrails import Block, Guardrails, Pass, Retry, Rewrite, checks

WITHHELD = "[The answer was withheld by a guardrail.]"


def guard(**kwargs: Any) -> Guardrails:
    return Guardrails(redact=False, **kwargs)


def polite(text: str, state: RunState) -> Pass | Retry:
    return Retry("Please answer politely.") if "stupid" in text else Pass()


async def test_a_retry_sends_the_feedback_and_the_model_answers_again() -> None:
    g = guard(output=[polite])
    r = await run_scripted([text("stupid question"), text("Happy to help.")], g)
    assert r.outcome.reason == "completed" and r.outcome.output == "Happy to help."
    assert [(m.role, m.content) for m in r.messages] == [
        ("user", "go"),
        ("assistant", "stupid question"),
        ("user", "Please answer politely."),
        ("assistant", "Happy to help."),
    ]
    assert r.outcome.state.get(g.RETRIES) == 1
    assert len(r.recorder.steps()) == 2
    check_phase_grammar(r.recorder.calls)


@pytest.mark.parametrize("bound", [0, 1, 3])
async def test_retries_are_bounded_then_the_run_stops_with_the_checks_code(bound: int) -> None:
    g = guard(output=[polite], max_output_retries=bound)
    r = await run_scripted([text("stupid")] * (bound + 5), g)
    outcome = r.outcome
    assert outcome.reason == "stopped"
    assert outcome.stop is not None and outcome.stop.code == "guardrails.output.polite"
    assert outcome.stop.detail.startswith("Please answer politely. (still failing after")
    assert len(r.model.requests) == bound + 1
    assert outcome.state.get(g.RETRIES) == bound
    assert outcome.output == WITHHELD  # the refused answer is not the outcome's output
    assert [m.content for m in r.messages if m.role == "user"][1:] == ["Please answer politely."] * bound


async def test_a_block_stops_at_once_and_withholds_the_answer() -> None:
    g = guard(output=[lambda t, s: Block("leaks internal data") if "internal" in t else None])
    r = await run_scripted([text("the internal numbers are ..."), text("never")], g)
    assert r.outcome.reason == "stopped"
    assert r.outcome.stop is not None
    assert (r.outcome.stop.code, r.outcome.stop.detail) == ("guardrails.output.output1", "leaks internal data")
    assert r.outcome.output == WITHHELD
    assert r.messages[-2].content == "the internal numbers are ..."  # still in the transcript
    assert len(r.model.requests) == 1


async def test_blocked_output_can_be_changed_or_switched_off() -> None:
    block = [lambda t, s: Block("no", code="policy.no")]
    custom = await run_scripted([text("answer")], guard(output=block, blocked_output="Sorry."))
    assert custom.outcome.output == "Sorry."
    off = await run_scripted([text("answer")], guard(output=block, blocked_output=None))
    assert off.outcome.output == "answer" and off.outcome.stop is not None and off.outcome.stop.code == "policy.no"


async def test_only_final_answers_are_checked() -> None:
    seen: list[str] = []

    def record(text: str, state: RunState) -> None:
        seen.append(text)

    def note(text: str) -> str:
        return "ok"

    r = await run_scripted([tool_call("note", text="a"), text("final")], FakeTools(note), guard(output=[record]))
    assert r.outcome.reason == "completed" and seen == ["final"]


async def test_checks_run_in_order_and_the_first_non_pass_decides() -> None:
    calls: list[str] = []

    def first(text: str, state: RunState) -> Retry:
        calls.append("first")
        return Retry("fix it")

    def second(text: str, state: RunState) -> Block:
        calls.append("second")
        return Block("never reached")

    r = await run_scripted([text("a"), text("b")], guard(output=[first, second], max_output_retries=1))
    assert calls == ["first", "first"] and r.outcome.stop is not None
    assert r.outcome.stop.code == "guardrails.output.first"


async def test_async_checks_are_awaited() -> None:
    async def moderation(text: str, state: RunState) -> Pass | Retry:
        await trio.sleep(0.01)
        return Retry("Rephrase.") if "rude" in text else Pass()

    g = guard(output=[moderation])
    r = await run_scripted([text("rude"), text("kind")], g)
    assert r.outcome.output == "kind" and r.outcome.state.get(g.RETRIES) == 1


async def test_an_output_check_cannot_rewrite() -> None:
    r = await run_scripted([text("x")], guard(output=[lambda t, s: Rewrite("y")]))
    assert r.outcome.reason == "error" and r.outcome.error is not None
    assert r.outcome.error.hook == "agent_after_inference"
    assert "cannot be rewritten" in r.outcome.error.message


async def test_checks_no_secrets_asks_for_an_answer_without_the_secret() -> None:
    g = guard(output=[checks.no_secrets(on_found="retry")])
    r = await run_scripted([text("use AKIAABCDEFGHIJ234567"), text("use your own key")], g)
    assert r.outcome.output == "use your own key"
    assert "secret-looking values (aws_access_key)" in r.messages[2].content


async def test_checks_deny() -> None:
    g = guard(output=[checks.deny(r"(?i)guaranteed", "Do not promise returns.", on_match="retry", name="promises")])
    r = await run_scripted([text("Guaranteed 20%!"), text("Returns vary.")], g)
    assert r.outcome.output == "Returns vary." and r.messages[2].content == "Do not promise returns."
    blocked = await run_scripted([text("guaranteed")], guard(output=[checks.deny("guaranteed", "no")]))
    assert blocked.outcome.stop is not None and blocked.outcome.stop.code == "guardrails.output.deny"
