"""Retry, limits, guardrails, typed output and handoff all acting in one run, on one SQLite journal.

One scripted run: the first request fails (503) and is retried; the model calls the
``researcher`` sub-agent with a task that leaks an API key; the child run looks the
answer up; the model then gives an invalid typed answer, gets feedback, and gives a
valid one. Limits have budgets that the run reaches exactly but does not exceed, and a
content stop rule that never matches here. The variants run the same configuration
with scripts that trip the tool-call budget and the content rule.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import attrs
import pytest
from handoff_testkit import RunsRecorder, scripted, tool_messages

from agent_kernel import Agent, events, hookimpl
from agent_kernel.journal import Retried, Started
from agent_kernel.testing import ScriptedModel, fault, text, tool_call
from agent_plugin_guardrails import Guardrails
from agent_plugin_handoff import PARENT, Handoff, SubAgent
from agent_plugin_limits import Limits
from agent_plugin_output import TypedOutput
from agent_plugin_retry import Retry
from agent_plugin_sqlite import SqliteJournal
from agent_plugin_tools import Toolbox

SECRET = "sk-proj-4fG7hJ2kL9mN3pQ8rS5tV1wX6yZ0aB"
CHILD = "combo/1/call_1_1"


@attrs.frozen
class City:
    """A city and how many people live there."""

    name: str
    population: int = attrs.field(validator=attrs.validators.gt(0))


def census(country: str) -> str:
    """Look up a country's largest city.

    Args:
        country: the country.
    """
    return "Paris: 2102650 inhabitants" if country == "France" else "unknown"


class EventLog:
    """A plugin keeping every event of the parent agent."""

    name = "event-log"

    def __init__(self) -> None:
        self.events: list[events.Event] = []

    @hookimpl
    def agent_on_event(self, event: events.Event) -> None:
        self.events.append(event)


@attrs.frozen
class Rig:
    """One combined agent and what the test looks at."""

    agent: Agent
    output: TypedOutput[City]
    handoff: Handoff
    parent_model: ScriptedModel
    child_model: ScriptedModel
    recorder: RunsRecorder
    log: EventLog


def build(db: Path, parent_turns: list[Any]) -> Rig:
    rec = RunsRecorder()
    child_model = scripted([tool_call("census", country="France"), text("Paris, with 2102650 inhabitants.")])
    researcher = SubAgent(
        "researcher",
        "Finds facts.",
        model="scripted",
        instructions="You find facts.",
        plugins=[child_model, Toolbox([census]), rec],
        autoload=False,
    )
    output = TypedOutput(City, max_retries=2)
    handoff = Handoff([researcher], max_depth=2)
    parent_model = scripted(parent_turns)
    plugins = [
        parent_model,
        Toolbox([census]),
        Retry(3, base_delay=0.01, jitter="none"),
        Limits(max_steps=3, max_tool_calls=3, max_requests=4, stop_on_content=r"(?i)\bforbidden\b"),
        Guardrails(redact=True),
        output,
        handoff,
        SqliteJournal(db),
        rec,
    ]
    log = EventLog()
    agent = Agent("scripted", [*plugins, log], autoload=False, instructions="You answer with a City.")
    return Rig(agent, output, handoff, parent_model, child_model, rec, log)


TASK = tool_call("researcher", input=f"Find the largest city in France. My key is {SECRET}.")
INVALID = tool_call("final_result", name="Paris", population=-1)
VALID = tool_call("final_result", name="Paris", population=2102650)


def journal_rows(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT run_id, data FROM entries ORDER BY run_id, seq").fetchall()


def test_retry_limits_guardrails_output_and_handoff_all_act_in_one_run(tmp_path: Path, run: Any) -> None:
    db = tmp_path / "combo.db"
    rig = build(db, [fault("overloaded"), TASK, INVALID, VALID])
    agent, output, handoff = rig.agent, rig.output, rig.handoff

    async def main() -> Any:
        outcome = await agent.run(f"Largest city in France? (key {SECRET})", run_id="combo")
        children = await handoff.child_runs("combo")
        child = await handoff.children["researcher"].resume(CHILD)
        return outcome, children, child

    outcome, children, child = run(main)
    entries = run(agent.journal.load, "combo")

    # output: one failed validation answered with feedback, then the typed value
    assert outcome.reason == "completed", (outcome.error, outcome.stop)
    assert output.value(outcome) == City("Paris", 2102650)
    assert outcome.state.get(output.RETRIES) == 1
    delegated, invalid, accepted = tool_messages(outcome)
    assert invalid.is_error and "population" in invalid.content
    assert accepted.content == "Final result accepted."
    # retry: the 503 was retried once and the run went on
    assert outcome.stats.retries == 1 and outcome.stats.llm_calls == 3
    assert [e.attempt for e in rig.log.events if isinstance(e, events.RetryScheduled)] == [1]
    assert [e.error for e in entries if isinstance(e, Retried)] == ["InferenceError: overloaded"]
    # limits: steps and tool calls exactly at their budgets (never exceeded), 3 of 4 requests
    assert outcome.stats.steps == 3 and outcome.state.data["limits.tool_calls"] == 3
    assert outcome.stats.llm_calls == 3 and outcome.state.data["limits.requests"] == 3
    assert outcome.state.stop is not None and outcome.state.stop.completed  # finished by the output, not stopped
    # handoff: the sub-agent's answer is the first tool result; its run is linked and complete
    assert children == [CHILD]
    assert delegated.content == "Paris, with 2102650 inhabitants." and not delegated.is_error
    assert child.reason == "completed" and child.state.get(PARENT) == "combo" and child.stats.llm_calls == 2
    # guardrails: the key is in no journal entry of either run, no request and no event
    rows = journal_rows(db)
    assert {r for r, _ in rows} == {"combo", CHILD}
    assert not [r for r, data in rows if SECRET in data]
    started = next(e for e in entries if isinstance(e, Started))
    assert started.input == "Largest city in France? (key [REDACTED:openai_key])"
    assert any("[REDACTED:openai_key]" in data for r, data in rows if r == CHILD)
    assert all(
        SECRET not in m.content for r in [*rig.parent_model.requests, *rig.child_model.requests] for m in r.messages
    )
    assert all(SECRET not in repr(e) for e in rig.log.events)
    # and the phase grammar holds for the parent and the child
    rig.recorder.check()
    assert set(rig.recorder.calls) == {"combo", CHILD}


@pytest.mark.parametrize(
    ("turns", "code"),
    [
        # the invalid answer plus two more delegations: the 4th call (a delegation) is over budget
        (
            [TASK, [INVALID, tool_call("researcher", input="check"), tool_call("researcher", input="again")]],
            "limit.tool_calls",
        ),
        # an answer matching the content rule stops the run at once
        ([TASK, text("That is forbidden knowledge.")], "stop.content"),
    ],
    ids=["tool-budget", "stop-rule"],
)
def test_the_same_configuration_is_stopped_by_its_limits(tmp_path: Path, run: Any, turns: list[Any], code: str) -> None:
    db = tmp_path / "combo.db"
    rig = build(db, [fault("overloaded"), *turns])
    agent, output, handoff = rig.agent, rig.output, rig.handoff

    async def main() -> Any:
        outcome = await agent.run(f"Largest city in France? (key {SECRET})", run_id="combo")
        return outcome, await handoff.child_runs("combo")

    outcome, children = run(main)
    assert outcome.reason == "stopped" and outcome.stop.code == code
    assert outcome.stats.retries == 1
    assert output.value(outcome) is None  # no typed answer was accepted
    assert not [r for r, data in journal_rows(db) if SECRET in data]
    if code == "limit.tool_calls":
        # the over-budget delegation was blocked (its result says so) and started no child run
        *_, checked, refused = tool_messages(outcome)
        assert checked.content == "Paris, with 2102650 inhabitants." and not checked.is_error
        assert refused.is_error and refused.content.startswith("Not run")
        assert children == [CHILD, "combo/2/call_2_2"] and outcome.state.data["limits.tool_calls"] == 3
    else:
        assert len(children) == 1 and outcome.stats.steps == 2
    rig.recorder.check()


def test_a_call_over_the_tool_budget_is_blocked_even_when_it_carries_the_final_answer(tmp_path: Path, run: Any) -> None:
    """Limits' Block outranks the output plugin's ProvideResult, whatever the plugin order."""
    census_calls = [tool_call("census", country=c) for c in ("France", "Spain", "Italy")]
    rig = build(tmp_path / "budget.db", [census_calls, VALID])
    outcome = run(rig.agent.run, "Largest city?")
    assert outcome.reason == "stopped" and outcome.stop is not None, (outcome.reason, outcome.stop)
    assert outcome.stop.code == "limit.tool_calls"
    assert rig.output.value(outcome) is None
    assert "Not run" in tool_messages(outcome)[-1].content
