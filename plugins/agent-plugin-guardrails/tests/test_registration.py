"""Construction, hook colours, state keys, and handing redaction to the kernel."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import pytest

from agent_kernel import Agent, Message, RunState
from agent_kernel import events as ev
from agent_kernel.journal import Committed
from agent_kernel.patches import AppendMessages
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_plugin_guardrails import Guardrails, Pass, Redactor

KEY = "sk-abcdefghijklmnopqrstuvwxyz"


def sync_check(text: str, state: RunState) -> Pass:
    return Pass()


async def async_check(text: str, state: RunState) -> Pass:
    return Pass()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": "a b"}, ValueError, "name"),
        ({"max_output_retries": -1}, ValueError, "max_output_retries"),
        ({"max_output_retries": 1.5}, ValueError, "max_output_retries"),
        ({"redact": False, "patterns": ["x"]}, ValueError, "need redact=True"),
        ({"redact": Redactor(), "patterns": ["x"]}, ValueError, "your own Redactor"),
        ({"input": [sync_check, sync_check]}, ValueError, "two input processors are named 'sync_check'"),
        ({"output": [("bad name", sync_check)]}, ValueError, "letters, digits"),
        ({"input": ["not callable"]}, TypeError, "not callable"),
    ],
)
def test_bad_configuration_fails_at_construction(kwargs: dict, error: type, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(error, match=message):
        Guardrails(**kwargs)


def test_named_pairs_tell_processors_apart() -> None:
    g = Guardrails(input=[("a", sync_check), ("b", sync_check)], redact=False)
    assert [p.name for p in g.input] == ["a", "b"]


@pytest.mark.parametrize(
    ("input", "output", "run_start_async", "after_inference_async"),
    [
        ([sync_check], [sync_check], False, False),
        ([async_check, sync_check], [sync_check], True, False),
        ([sync_check], [async_check], False, True),
    ],
)
def test_hooks_are_async_only_when_a_processor_must_be_awaited(
    input: list[Any], output: list[Any], run_start_async: bool, after_inference_async: bool
) -> None:
    g = Guardrails(input=input, output=output, redact=False)
    assert inspect.iscoroutinefunction(g.agent_run_start) is run_start_async
    assert inspect.iscoroutinefunction(g.agent_after_inference) is after_inference_async
    agent = Agent(model="scripted", plugins=[ScriptedModel([text("x")]), g], autoload=False)
    assert set(agent.plugins["guardrails"].hooks) == {
        "agent_register_runtime",
        "agent_run_start",
        "agent_after_inference",
    }


def test_state_keys_are_declared_and_named_after_the_plugin() -> None:
    added: list[str] = []

    class Runtime:
        def add_state_key(self, key: Any) -> None:
            added.append(key.name)

    Guardrails(name="gate", redact=False).agent_register_runtime(Runtime())  # type: ignore[arg-type]
    assert added == ["gate.input", "gate.output_retries"]


def test_the_redactor_is_handed_to_a_kernel_that_accepts_redactors() -> None:
    registered: list[Any] = []

    class Runtime:
        def add_state_key(self, key: Any) -> None:
            pass

        def add_redactor(self, redactor: Any) -> None:
            registered.append(redactor)

    g = Guardrails(patterns=[("acme", r"ACME-\d+")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RedactionUnavailable here
        g.agent_register_runtime(Runtime())  # type: ignore[arg-type]
    [redact] = registered
    entry = Committed("after_inference", 1, (AppendMessages((Message("user", f"{KEY} ACME-7"),)),), ("p",))
    assert redact(entry).patches[0].messages[0].content == "[REDACTED:openai_key] [REDACTED:acme]"
    assert redact(ev.TextDelta(1, "run", KEY)).text == "[REDACTED:openai_key]"
    quiet = Committed("step_end", 1)
    assert redact(quiet) is quiet


async def test_secrets_never_reach_the_model_the_journal_or_events() -> None:
    from agent_plugin_tools import Toolbox

    def lookup(name: str) -> str:
        """Look a credential up.

        Args:
            name: which one.
        """
        return f"the key for {name} is {KEY}"

    model = ScriptedModel([tool_call("lookup", name="prod"), text(f"use {KEY}")])
    agent = Agent(model="scripted", plugins=[model, Toolbox([lookup]), Guardrails()], autoload=False)
    async with agent.stream(f"my key is {KEY}", run_id="r") as events:
        seen = [agent.converter.unstructure(e) async for e in events]
    outcome = events.outcome
    assert outcome is not None and outcome.reason == "completed"
    journal = [agent.codec.encode(e) for e in await agent.journal.load("r")]
    requests = [m.content for r in model.requests for m in r.messages]
    for where, texts in (("journal", journal), ("events", [repr(e) for e in seen]), ("requests", requests)):
        assert not [t for t in texts if KEY in t], f"the secret reached the {where}"
    assert "[REDACTED:openai_key]" in outcome.output and any("[REDACTED:openai_key]" in t for t in journal)


async def test_an_error_outcome_holds_no_secret_either() -> None:
    """`Outcome.error`, what RunEnd hooks see and the journaled Ended entry: all redacted."""
    from agent_kernel import hookimpl
    from agent_kernel.testing import fault

    seen: list[str] = []

    class Ends:
        name = "ends"

        @hookimpl
        def agent_run_end(self, ctx: Any, outcome: Any) -> None:
            seen.append(outcome.error.message)

    model = ScriptedModel([fault(f"rejected key {KEY}", retryable=False), text("never")])
    agent = Agent(model="scripted", plugins=[model, Guardrails(), Ends()], autoload=False)
    outcome = await agent.run("hi", run_id="r")
    assert outcome.reason == "error" and outcome.error is not None
    ended = (await agent.journal.load("r"))[-1]
    for where, message in (("outcome", outcome.error.message), ("RunEnd", seen[0]), ("journal", ended.error.message)):
        assert message == "inference failed: InferenceError: rejected key [REDACTED:openai_key]", where


def test_no_warning_without_redaction() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Agent(model="scripted", plugins=[ScriptedModel([text("x")]), Guardrails(redact=False)], autoload=False)


def test_redact_is_the_identity_when_redaction_is_off() -> None:
    value = Message("user", KEY)
    assert Guardrails(redact=False).redact(value) is value
    assert Guardrails().redact(value) == Message("user", "[REDACTED:openai_key]")
