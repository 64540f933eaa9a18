"""Properties: output retries never exceed the bound; input chains; the phase grammar holds."""

from __future__ import annotations

from functools import partial
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_kernel import RunState
from agent_kernel.testing import check_phase_grammar, run_scripted, text
from agent_kernel.testing.grammar import check_transcript, exercise, run_sync
from agent_kernel.testing.strategies import faults, plugin_behaviours, scripts
from agent_plugin_guardrails import Block, Guardrails, Pass, Retry, Rewrite


@settings(max_examples=150, deadline=None)  # no timing: the machine may be loaded
@given(verdicts=st.lists(st.sampled_from(["pass", "retry", "block"]), min_size=1, max_size=8), bound=st.integers(0, 3))
async def test_output_retries_never_exceed_the_bound(verdicts: list[str], bound: int) -> None:
    verdicts = [*verdicts, *["retry"] * (bound + 2)]  # the run always ends within the script

    def check(text: str, state: RunState) -> Pass | Retry | Block:
        answer = sum(m.role == "assistant" for m in state.messages)  # this answer's index
        kind = verdicts[answer]
        return Pass() if kind == "pass" else Retry(f"again {answer}") if kind == "retry" else Block("no")

    g = Guardrails(output=[check], max_output_retries=bound, redact=False)
    r = await run_scripted([text(f"answer {i}") for i in range(len(verdicts))], g)

    used, expected, answers = 0, "", 0
    for kind in verdicts:
        answers += 1
        if kind == "pass":
            expected = "completed"
            break
        if kind == "block" or used == bound:
            expected = "stopped"
            break
        used += 1
    outcome = r.outcome
    assert outcome.reason == expected
    assert len(r.model.requests) == answers
    assert outcome.state.get(g.RETRIES) == used <= bound
    feedback = [m for m in r.messages if m.role == "user" and m.content.startswith("again")]
    assert len(feedback) == used
    if expected == "stopped":
        assert outcome.stop is not None and outcome.stop.code == "guardrails.output.check"
    check_phase_grammar(r.recorder.calls)


@settings(max_examples=100, deadline=None)
@given(
    chain=st.lists(st.one_of(st.just("pass"), st.just("block"), st.text(max_size=6).map(lambda s: "+" + s)), max_size=5)
)
async def test_input_chains_apply_rewrites_in_order_until_a_block(chain: list[str]) -> None:
    def make(step: str) -> Any:
        def processor(text: str, state: RunState) -> Any:
            if step == "pass":
                return None
            if step == "block":
                return Block("blocked")
            return Rewrite(text + step[1:])

        return processor

    g = Guardrails(input=[(f"p{i}", make(step)) for i, step in enumerate(chain)], redact=False)
    r = await run_scripted([text("ok")], g, input="in")
    expected, blocked = "in", False
    for step in chain:
        if step == "block":
            blocked = True
            break
        if step != "pass":
            expected += step[1:]
    if blocked:
        assert r.outcome.reason == "stopped" and r.model.requests == []
        assert r.messages[0].content == "in"
    else:
        assert r.outcome.reason == "completed"
        assert [m.content for m in r.model.requests[0].messages] == [expected]


def grammar_property(factory: Any, max_examples: int) -> None:
    """`check_plugin_phase_grammar` (random scripts, co-plugins and faults), where
    `factory` also receives a drawn input verdict ("pass", "block" or "rewrite"):
    the harness's input is always the same text."""

    @settings(max_examples=max_examples, deadline=None)
    @given(
        script=scripts(mid_text=True),
        behaviours=plugin_behaviours(max_plugins=2),
        drawn_faults=faults(),
        concurrent=st.booleans(),
        verdict=st.sampled_from(["pass", "block", "rewrite"]),
    )
    def check(script: list[Any], behaviours: list[Any], drawn_faults: Any, concurrent: bool, verdict: str) -> None:
        run_one = partial(exercise, script, [factory(verdict), *behaviours], drawn_faults, concurrent=concurrent)
        check_transcript(run_sync(run_one))

    check()


def input_processor(verdict: str) -> Any:
    def processor(text: str, state: RunState) -> Any:
        return Block("no") if verdict == "block" else Rewrite(text + "!") if verdict == "rewrite" else None

    return processor


async def moody_output(text: str, state: RunState) -> Any:
    """Scripted answers are words of "abcdefghij xyz": some retried, some blocked, some passed."""
    return Retry("again") if "a" in text else Block("no") if "j" in text else None


def test_phase_grammar_holds_with_guardrails_in_random_runs() -> None:
    grammar_property(
        lambda verdict: Guardrails(
            input=[input_processor(verdict)], output=[moody_output], max_output_retries=1, redact=False
        ),
        max_examples=80,
    )
