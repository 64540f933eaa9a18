"""Window strategies: bounds, tool-call integrity, real runs, summaries journaled once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from memory_testkit import PROPERTY, CountingModel, conversations, echo, fail, split_pairs

from agent_kernel import Agent, Message, Request, Response, Usage, hookimpl, patches
from agent_kernel.testing import FakeTools, check_plugin_phase_grammar
from agent_plugin_memory import (
    SUMMARIES,
    LastTurns,
    Summarize,
    TokenBudget,
    estimate_tokens,
    message_tokens,
    model_summarizer,
)
from agent_plugin_sqlite import SqliteJournal


def window(messages: Sequence[Message], start: int) -> list[Message]:
    """What a request carries for `start`: the leading system messages, then messages[start:]."""
    lead = 0
    while lead < len(messages) and messages[lead].role == "system":
        lead += 1
    return [*messages[:lead], *messages[max(start, lead) :]]


def legal_starts(messages: Sequence[Message]) -> list[int]:
    lead = window(messages, len(messages)).__len__()
    return [s for s in range(lead, len(messages) + 1) if s == len(messages) or messages[s].role != "tool"]


# ----------------------------------------------------------------------------- pure properties


@PROPERTY
@given(conversations(), st.integers(1, 5))
def test_last_turns_keeps_exactly_n_turns_and_never_splits_a_call(messages: list[Message], n: int) -> None:
    start = LastTurns(n).start(messages)
    assert start in legal_starts(messages)
    sent = window(messages, start)
    assert split_pairs(sent) == []
    users = sum(m.role == "user" for m in messages)
    assert sum(m.role == "user" for m in sent) == min(n, users)
    if users > n:  # the window opens with the n-th last user message
        assert messages[start].role == "user"


@PROPERTY
@given(conversations(), st.integers(1, 400))
def test_token_budget_is_the_largest_window_that_fits_whenever_one_fits(messages: list[Message], budget: int) -> None:
    start = TokenBudget(budget).start(messages)
    assert start in legal_starts(messages)
    assert split_pairs(window(messages, start)) == []

    def cost(s: int) -> int:
        return sum(message_tokens(m) for m in window(messages, s))

    lead = len(window(messages, len(messages)))
    candidates = [s for s in legal_starts(messages) if s < len(messages)]  # windows keeping some conversation
    fitting = [s for s in candidates if cost(s) <= budget]
    if fitting:
        assert start == min(fitting) and cost(start) <= budget
    else:  # nothing fits: the smallest window, which keeps the last call with its results
        assert start == max(candidates, default=lead)


def test_bad_arguments_are_refused_with_the_name_of_the_argument() -> None:
    with pytest.raises(ValueError, match=r"LastTurns\(n\)"):
        LastTurns(0)
    with pytest.raises(ValueError, match=r"TokenBudget\(max_tokens\)"):
        TokenBudget(True)
    with pytest.raises(ValueError, match=r"keep_tokens"):
        Summarize(100, _summary_of("x"), keep_tokens=100)
    with pytest.raises(TypeError, match=r"summarizer"):
        Summarize(100, "not callable")  # type: ignore[arg-type]


def test_token_estimate_counts_text_tool_calls_and_framing() -> None:
    assert estimate_tokens("") == 0 and estimate_tokens("abcde") == 2
    plain = message_tokens(Message("user", "abcd"))
    assert plain == 4 + 1
    assert message_tokens(Message("user", "abcd"), tokenizer=len) == 8


# ----------------------------------------------------------------------------- real runs


def _turns(steps: list[int]) -> list[Any]:
    """Model turns: for each entry, that many echo calls (0: a text answer)."""
    return [[("echo", {"text": f"t{i}-{j}"}) for j in range(n)] if n else f"answer {i}" for i, n in enumerate(steps)]


class FollowUps:
    """After each of the first answers, the user asks again (AppendMessages after inference)."""

    name = "follow-ups"

    def __init__(self, questions: list[str]) -> None:
        self.questions = list(questions)

    @hookimpl
    def agent_after_inference(self, response: Response) -> list[patches.Patch] | None:
        if response.message.tool_calls or not self.questions:
            return None
        return [patches.AppendMessages([Message("user", self.questions.pop(0))])]


@PROPERTY
@given(st.lists(st.integers(0, 3), min_size=1, max_size=8), st.integers(20, 200), st.integers(0, 3))
def test_every_request_of_a_real_run_respects_its_bound_and_keeps_calls_whole(
    steps: list[int], budget: int, n: int
) -> None:
    """Real runs (users asking again, tool calls): every request the model gets is a legal window."""

    async def main() -> None:
        texts = sum(1 for k in steps if k == 0)
        model = CountingModel([*_turns(steps), "done"])
        strategy: Any = LastTurns(n) if n else TokenBudget(budget)
        questions = [f"q{i}" for i in range(texts)]
        plugins = [model, FakeTools(echo), strategy, FollowUps(questions)]
        outcome = await Agent("scripted", plugins, autoload=False, instructions="sys").run("go")
        assert outcome.reason == "completed", outcome.error
        for request in model.requests:
            messages = list(request.messages)
            assert messages[0] == Message("system", "sys")
            assert split_pairs(messages) == []
            tail = messages[1:]
            if n:
                asked = sum(m.role == "user" for m in messages)
                assert asked == n or messages[1].content == "go"  # n turns, or the whole conversation
            elif sum(message_tokens(m) for m in messages) > budget:
                assert sum(m.role != "tool" for m in tail) == 1  # only the smallest window is over budget

    trio.run(main)


def test_last_turns_hides_earlier_turns_from_the_model(run: Any) -> None:
    async def main() -> None:
        model = CountingModel(["one", "two", [("echo", {"text": "e"})], "three"])
        plugins = [model, FakeTools(echo), LastTurns(1), FollowUps(["second", "third"])]
        outcome = await Agent("scripted", plugins, autoload=False, instructions="sys").run("first")
        assert outcome.reason == "completed" and outcome.output == "three"
        seen = [[m.content for m in r.messages if m.role != "tool"] for r in model.requests]
        assert seen == [["sys", "first"], ["sys", "second"], ["sys", "third"], ["sys", "third", ""]]
        assert len(outcome.state.messages) == 9  # the state keeps everything

    run(main)


# ----------------------------------------------------------------------------- summaries


def _summary_of(prefix: str) -> Any:
    """A summarizer recording ``(messages, previous, result)`` of each call in ``.calls``."""
    calls: list[tuple[list[Message], str, str]] = []

    async def summarize(messages: Sequence[Message], previous: str) -> str:
        result = f"{prefix}{len(calls) + 1}: " + " | ".join(m.content[:8] for m in messages if m.content)
        calls.append((list(messages), previous, result))
        return result

    summarize.calls = calls  # type: ignore[attr-defined]
    return summarize


def test_summarize_replaces_older_messages_by_a_journaled_summary(run: Any, db: Any) -> None:
    async def main() -> None:
        summarizer = _summary_of("S")
        long = "x" * 80  # 20 tokens
        model = CountingModel([*([[("echo", {"text": long})]] * 6), "done"])
        strategy = Summarize(120, summarizer, keep_tokens=60)
        journal = SqliteJournal(db)
        agent = Agent("scripted", [journal, model, FakeTools(echo), strategy], autoload=False, instructions="sys")
        outcome = await agent.run("start " + long)
        assert outcome.reason == "completed", outcome.error
        calls = summarizer.calls
        state = outcome.state
        assert len(calls) >= 2 and state.get(SUMMARIES) == len(calls)
        # each summary builds on the previous one and covers the next messages, none twice, none skipped
        assert [previous for _, previous, _ in calls] == ["", *(result for _, _, result in calls[:-1])]
        summarised = [message for messages, _, _ in calls for message in messages]
        assert summarised == list(state.messages[1 : state.window_start])
        assert state.summary == calls[-1][2]
        last = list(model.requests[-1].messages)
        assert last[:2] == [Message("system", "sys"), Message("system", state.summary)]
        assert last[2:] == list(state.messages[state.window_start : -1]) and split_pairs(last) == []
        # the summary is in the journal: a new agent on the same file folds the same state
        journal.close()
        again = Agent("scripted", [SqliteJournal(db), CountingModel([]), FakeTools(echo), strategy], autoload=False)
        resumed = await again.resume(outcome.run_id)
        assert resumed.state == state and len(calls) == state.get(SUMMARIES)

    run(main)


async def test_a_resume_after_a_crash_does_not_summarise_again(db: Any) -> None:
    summarizer = _summary_of("S")
    long = "y" * 80
    turns: list[Any] = [[("echo", {"text": long})], [("echo", {"text": long})], fail(), "done"]
    strategy = Summarize(60, summarizer, keep_tokens=30)
    journal = SqliteJournal(db)
    agent = Agent("scripted", [journal, CountingModel(turns), FakeTools(echo), strategy], autoload=False)
    failed = await agent.run("hello " + long)
    assert failed.reason == "error" and "boom" in failed.error.message
    summaries = len(summarizer.calls)
    assert summaries >= 1
    # a new process: new journal object, new agent, a model that answers at once
    journal.close()
    journal2 = SqliteJournal(db)
    model = CountingModel(["done"])
    agent2 = Agent("scripted", [journal2, model, FakeTools(echo), strategy], autoload=False)
    outcome = await agent2.resume(failed.run_id)
    assert outcome.reason == "completed", outcome.error
    assert len(summarizer.calls) == summaries  # the failed step's BeforeInference was committed with its summary
    assert model.requests[0].messages[0].content.startswith(f"S{summaries}:")
    journal2.close()


def test_model_summarizer_asks_the_executor_with_a_transcript(run: Any) -> None:
    class Recording:
        def __init__(self) -> None:
            self.requests: list[Request] = []

        async def infer(self, request: Request, deltas: Any) -> Response:
            self.requests.append(request)
            deltas.text("ignored")
            return Response(Message("assistant", "the summary"), Usage())

    async def main() -> None:
        executor = Recording()
        summarize = model_summarizer(executor, "openai:tiny", settings={"max_tokens": 50})
        from agent_kernel import ToolCall

        messages = [
            Message("user", "hi"),
            Message("assistant", "", (ToolCall("c1", "add", {"a": 1}),)),
            Message("tool", "2", tool_call_id="c1"),
        ]
        assert await summarize(messages, "earlier") == "the summary"
        (request,) = executor.requests
        assert request.model == "openai:tiny" and request.tool_choice == "none" and request.tools == ()
        assert request.settings == {"max_tokens": 50}
        system, user = request.messages
        assert system.role == "system" and "summary" in system.content
        assert user.content.splitlines() == [
            "Previous summary:",
            "earlier",
            "",
            "[user]: hi",
            '[assistant calls add c1]: {"a": 1}',
            "[tool result c1]: 2",
        ]
        with pytest.raises(TypeError, match="infer"):
            model_summarizer(object(), "x")  # type: ignore[arg-type]

    run(main)


@pytest.mark.parametrize(
    "make",
    [lambda: LastTurns(1), lambda: TokenBudget(40), lambda: Summarize(40, _summary_of("S"))],
    ids=["last_turns", "token_budget", "summarize"],
)
def test_window_strategies_keep_the_phase_grammar_under_random_plugins_and_faults(make: Any) -> None:
    """The kit's property: random scripts, misbehaving plugins, faults, resumes; grammar and RunEnd-once hold."""
    check_plugin_phase_grammar(make, max_examples=PROPERTY.max_examples // 2)
