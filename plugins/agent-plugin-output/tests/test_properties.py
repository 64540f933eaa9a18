"""Properties: attempts never exceed the bound; the phase grammar holds with TypedOutput."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_kernel.testing import FakeTools, check_phase_grammar, run_scripted, text, tool_call
from agent_kernel.testing.grammar import check_plugin_phase_grammar
from agent_kernel.testing.strategies import scripts
from agent_plugin_output import TypedOutput

from .conftest import City

KINDS = ("valid_call", "invalid_call", "valid_text", "invalid_text", "other_tool")


def turn(kind: str) -> Any:
    return {
        "valid_call": tool_call("final_result", name="Paris", population=1),
        "invalid_call": tool_call("final_result", name="Paris", population=0),
        "valid_text": text(json.dumps({"name": "Paris", "population": 1})),
        "invalid_text": text("Paris"),
        "other_tool": tool_call("note", text="x"),
    }[kind]


def classify(kind: str, mode: str) -> str:
    """Whether a turn is a successful attempt ("ok"), a failed one ("fail") or no attempt ("step")."""
    if kind == "other_tool":
        return "step"
    if kind.endswith("_call"):
        if mode == "native":
            return "step"  # no final_result tool: the kernel answers "unknown tool"
        return "ok" if kind == "valid_call" else "fail"
    if mode == "tool":
        return "fail"  # text is never accepted in tool mode
    return "ok" if kind == "valid_text" else "fail"


@settings(max_examples=150)
@given(
    kinds=st.lists(st.sampled_from(KINDS), max_size=8),
    max_retries=st.integers(0, 3),
    mode=st.sampled_from(["tool", "native", "auto"]),
)
async def test_attempts_never_exceed_the_bound(kinds: list[str], max_retries: int, mode: str) -> None:
    kinds = [*kinds, *["invalid_text"] * (max_retries + 2)]  # enough failures to reach the bound
    output = TypedOutput(City, mode=mode, max_retries=max_retries)  # type: ignore[arg-type]

    def note(text: str) -> str:
        return "noted"

    r = await run_scripted([turn(k) for k in kinds], FakeTools(note), output)

    requests, failures, expected = 0, 0, None
    for kind in kinds:
        requests += 1
        verdict = classify(kind, mode)
        if verdict == "ok":
            expected = "completed"
            break
        if verdict == "fail":
            if failures == max_retries:
                expected = "stopped"
                break
            failures += 1
    outcome = r.outcome
    assert outcome.reason == expected
    assert len(r.model.requests) == requests
    assert outcome.state.get(output.RETRIES) == failures <= max_retries
    if expected == "completed":
        assert output.value(outcome) == City("Paris", 1)
    else:
        assert outcome.stop is not None and outcome.stop.code == "output.invalid"
        assert output.value(outcome) is None
    check_phase_grammar(r.recorder.calls)


def test_phase_grammar_holds_with_typed_output_in_random_runs() -> None:
    check_plugin_phase_grammar(
        lambda: TypedOutput({"type": "object"}, max_retries=1),  # every final_result call is valid
        max_examples=60,
        script_strategy=scripts(tools=("echo", "add", "final_result"), mid_text=True),
    )


def test_phase_grammar_holds_with_native_output_in_random_runs() -> None:
    check_plugin_phase_grammar(
        lambda: TypedOutput(City, mode="native", max_retries=1), max_examples=40, script_strategy=scripts(mid_text=True)
    )
