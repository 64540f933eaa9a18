"""Input processors: once per run, in RunStart, before any request is sent."""

from __future__ import annotations

from typing import Any

import trio

from agent_kernel import Agent, RunState
from agent_kernel.testing import CodecJournal, ScriptedModel, UseJournal, check_phase_grammar, fault, run_scripted, text
from agent_plugin_guardrails import Block, Guardrails, InputCheck, Pass, Rewrite, checks


def guard(**kwargs: Any) -> Guardrails:
    """Guardrails without redaction (this kernel cannot apply it; see test_registration)."""
    return Guardrails(redact=False, **kwargs)


def on_topic(text: str, state: RunState) -> Pass | Block:
    return Pass() if "invoice" in text else Block("only invoice questions")


async def test_a_passing_input_lets_the_run_proceed_and_is_recorded() -> None:
    g = guard(input=[on_topic])
    r = await run_scripted([text("sure")], g, input="my invoice")
    assert r.outcome.reason == "completed"
    assert r.outcome.state.get(g.INPUT) == InputCheck("passed")
    assert [m.content for m in r.model.requests[0].messages] == ["my invoice"]


async def test_a_blocked_input_stops_the_run_before_any_request() -> None:
    g = guard(input=[on_topic])
    r = await run_scripted([text("never")], g, input="the weather?")
    outcome = r.outcome
    assert outcome.reason == "stopped"
    assert outcome.stop is not None and (outcome.stop.code, outcome.stop.detail) == (
        "guardrails.input.on_topic",
        "only invoice questions",
    )
    assert r.model.requests == []
    r.recorder.assert_phases(["run_start", "run_end"])
    assert outcome.state.get(g.INPUT) == InputCheck("blocked", "on_topic", "guardrails.input.on_topic")
    assert outcome.stats.steps == 0


async def test_a_block_may_carry_its_own_code_and_the_plugin_name_prefixes_the_default() -> None:
    r = await run_scripted([text("x")], guard(input=[lambda t, s: Block("no", code="policy.offtopic")]))
    assert r.outcome.stop is not None and r.outcome.stop.code == "policy.offtopic"
    r = await run_scripted([text("x")], guard(input=[lambda t, s: Block("no")], name="gate"))
    assert r.outcome.stop is not None and r.outcome.stop.code == "gate.input.input1"  # a lambda is named by position


async def test_a_rewrite_replaces_the_users_message_for_the_model() -> None:
    def shout(text: str, state: RunState) -> Rewrite:
        return Rewrite(text.upper())

    g = guard(input=[shout])
    r = await run_scripted([text("ok")], g, input="hello")
    assert [(m.role, m.content) for m in r.model.requests[0].messages] == [("user", "HELLO")]
    assert r.messages[0].content == "HELLO"
    assert r.outcome.state.get(g.INPUT) == InputCheck("rewritten", "shout")


async def test_rewrites_chain_and_a_later_block_wins() -> None:
    seen: list[str] = []

    def first(text: str, state: RunState) -> Rewrite:
        return Rewrite(text + " one")

    def second(text: str, state: RunState) -> Rewrite:
        seen.append(text)
        return Rewrite(text + " two")

    r = await run_scripted([text("ok")], guard(input=[first, second]), input="x")
    assert seen == ["x one"] and r.model.requests[0].messages[-1].content == "x one two"

    def refuse(text: str, state: RunState) -> Block:
        return Block("no")

    blocked = await run_scripted([text("ok")], guard(input=[first, refuse]), input="x")
    assert blocked.outcome.reason == "stopped" and blocked.model.requests == []
    assert blocked.messages[0].content == "x"  # the rewrite was not applied


async def test_a_rewrite_to_the_same_text_is_a_pass() -> None:
    g = guard(input=[lambda text, state: Rewrite(text)])
    r = await run_scripted([text("ok")], g, input="same")
    assert r.outcome.state.get(g.INPUT) == InputCheck("passed")


async def test_instructions_stay_in_place_when_the_input_is_rewritten() -> None:
    g = guard(input=[("redact", checks.no_secrets(on_found="rewrite"))])
    r = await run_scripted([text("ok")], g, input="my key is sk-abcdefghijklmnopqrstuvwxyz", instructions="Be brief.")
    assert [(m.role, m.content) for m in r.model.requests[0].messages] == [
        ("system", "Be brief."),
        ("user", "my key is [REDACTED:openai_key]"),
    ]


async def test_async_processors_are_awaited_and_mix_with_sync_ones() -> None:
    calls: list[str] = []

    async def moderation(text: str, state: RunState) -> Pass | Block:
        await trio.sleep(0.01)  # e.g. a moderation model
        calls.append("moderation")
        return Block("flagged") if "attack" in text else Pass()

    def log(text: str, state: RunState) -> None:
        calls.append("log")

    g = guard(input=[log, moderation])
    ok = await run_scripted([text("fine")], g, input="hello")
    assert ok.outcome.reason == "completed" and calls == ["log", "moderation"]
    bad = await run_scripted([text("never")], g, input="attack at dawn")
    assert bad.outcome.stop is not None and bad.outcome.stop.code == "guardrails.input.moderation"


async def test_processors_see_the_state() -> None:
    seen: list[tuple[int, int]] = []

    def look(text: str, state: RunState) -> None:
        seen.append((state.step, len(state.messages)))

    await run_scripted([text("ok")], guard(input=[look]), input="hi", instructions="sys")
    assert seen == [(0, 2)]  # before the first step; the system and user messages


async def test_processors_run_once_per_run_not_again_on_resume() -> None:
    calls: list[str] = []

    def count(text: str, state: RunState) -> None:
        calls.append(text)

    journal = CodecJournal()
    turns = [fault("down", retryable=False), text("ok")]
    model = ScriptedModel(turns)
    agent = Agent(model="scripted", plugins=[model, guard(input=[count]), UseJournal(journal)], autoload=False)
    first = await agent.run("hello", run_id="r")
    assert first.reason == "error" and calls == ["hello"]
    again = Agent(model="scripted", plugins=[model, guard(input=[count]), UseJournal(journal)], autoload=False)
    resumed = await again.resume("r")
    assert resumed.reason == "completed" and calls == ["hello"]  # the decision is in the journal


async def test_a_bad_return_value_ends_the_run_with_an_error_naming_the_plugin() -> None:
    r = await run_scripted([text("x")], guard(input=[lambda t, s: "yes"]))
    error = r.outcome.error
    assert r.outcome.reason == "error" and error is not None
    assert (error.plugin, error.hook) == ("guardrails", "agent_run_start")
    assert "returned 'yes'; expected Pass(), Block(reason) or Rewrite(text)" in error.message


async def test_a_plain_function_returning_a_coroutine_is_explained() -> None:
    async def check(text: str, state: RunState) -> Pass:
        return Pass()

    def wrapper(text: str, state: RunState) -> Any:
        return check(text, state)

    r = await run_scripted([text("x")], guard(input=[wrapper]))
    assert r.outcome.error is not None and "declare it with async def" in r.outcome.error.message


async def test_checks_no_secrets_blocks_input_before_it_reaches_the_model() -> None:
    r = await run_scripted([text("never")], guard(input=[checks.no_secrets()]), input="password=hunter2")
    assert r.model.requests == []
    assert r.outcome.stop is not None and r.outcome.stop.code == "guardrails.input.no_secrets"
    assert r.outcome.stop.detail == "the text contains secret-looking values (password)"
    check_phase_grammar(r.recorder.calls)
