"""Context-window strategies: plugins that return `patches.SetWindow` before inference.

A window is where requests start in the conversation (`RunState.window_start`); the
kernel always sends the leading system messages, then the window's summary (if any),
then ``messages[start:]``, and keeps every message in the state and the journal.

Every strategy only chooses a start that is not a tool result, so an assistant
message that calls tools always travels with all of its results (they follow it
directly). Each looks back from the end of the conversation only as far as its
window reaches, so its cost per step does not grow with the length of the run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, final

from agent_kernel import Context, Message, ModelExecutor, Request, StateKey, hookimpl, patches
from agent_kernel.patches import Patch

if TYPE_CHECKING:
    from agent_kernel import RuntimeRegistrar

__all__ = [
    "SUMMARIES",
    "LastTurns",
    "Summarize",
    "Summarizer",
    "TokenBudget",
    "estimate_tokens",
    "message_tokens",
    "model_summarizer",
]

Tokenizer = Callable[[str], int]
Summarizer = Callable[[Sequence[Message], str], Awaitable[str]]
"""``await summarizer(messages, previous_summary)`` returns the new summary text."""

#: How many times `Summarize` replaced older messages by a summary in a run.
SUMMARIES: StateKey[int] = StateKey("memory.summaries", int, default=0)

_MESSAGE_OVERHEAD = 4  # role and separators, as chat templates add them


def estimate_tokens(text: str) -> int:
    """The default tokenizer estimate: ``ceil(len(text) / 4)`` (about right for English).

    .. versionadded:: 0.1
    """
    return math.ceil(len(text) / 4)


def message_tokens(message: Message, tokenizer: Tokenizer = estimate_tokens) -> int:
    """Tokens `message` costs in a request: its text, its tool calls, plus 4 for the framing.

    .. versionadded:: 0.1
    """
    tokens = _MESSAGE_OVERHEAD + tokenizer(message.content)
    for call in message.tool_calls:
        tokens += tokenizer(call.name) + tokenizer(json.dumps(dict(call.arguments), sort_keys=True))
    return tokens


def leading_system(messages: Sequence[Message]) -> int:
    """How many system messages open the conversation (the kernel always sends them)."""
    lead = 0
    while lead < len(messages) and messages[lead].role == "system":
        lead += 1
    return lead


def last_boundary(messages: Sequence[Message], lead: int) -> int:
    """The last index at or after `lead` where a window may start (not a tool result)."""
    i = len(messages) - 1
    while i >= lead and messages[i].role == "tool":
        i -= 1
    return max(i, lead)


def budget_start(messages: Sequence[Message], lead: int, budget: int, tokens: Callable[[Message], int]) -> int:
    """The smallest legal start ``s >= lead`` with ``tokens(messages[s:]) <= budget``.

    When no legal start fits, the last legal start (the smallest window that keeps
    a tool call with its results). Looks back only as far as the budget reaches.
    """
    total = 0
    best: int | None = None
    i = len(messages)
    while i > lead:
        i -= 1
        total += tokens(messages[i])
        if total > budget:
            break
        if messages[i].role != "tool":
            best = i
    else:
        return lead
    return last_boundary(messages, lead) if best is None else best


def _set_window(state_start: int, lead: int, start: int) -> list[Patch] | None:
    """`SetWindow(start)` when it changes what is sent; a start at `lead` means no window."""
    if start <= lead:
        return None if state_start <= lead else [patches.SetWindow(0)]
    return None if start == state_start else [patches.SetWindow(start)]


@final
class LastTurns:
    """Send only the last `n` turns; a turn starts at a user message.

    The leading system messages always go along. With fewer than `n` user messages
    everything is sent.

    Args:
        n: how many turns to keep (at least 1).

    .. versionadded:: 0.1
    """

    name = "memory.window"

    def __init__(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"LastTurns(n): n must be an int >= 1, got {n!r}")
        self.n = n

    def __repr__(self) -> str:
        return f"LastTurns({self.n})"

    def start(self, messages: Sequence[Message]) -> int:
        """Where the window of `messages` starts (the `n`-th last user message, or the lead)."""
        lead = leading_system(messages)
        seen = 0
        i = len(messages)
        while i > lead:
            i -= 1
            if messages[i].role == "user":
                seen += 1
                if seen == self.n:
                    return i
        return lead

    @hookimpl
    def agent_before_inference(self, ctx: Context) -> list[Patch] | None:
        messages = ctx.state.messages
        return _set_window(ctx.state.window_start, leading_system(messages), self.start(messages))


@final
class TokenBudget:
    """Send as many of the latest messages as fit in `max_tokens`.

    Counts the leading system messages plus the window, with `tokenizer` (default
    `estimate_tokens`) through `message_tokens`. Injected context and tool schemas
    are not counted: leave headroom for them. When even the last message with its
    tool call does not fit, that smallest window is sent anyway.

    Args:
        max_tokens: the budget (at least 1).
        tokenizer: ``tokenizer(text) -> int``, e.g. a real tokenizer's length.

    .. versionadded:: 0.1
    """

    name = "memory.window"

    def __init__(self, max_tokens: int, *, tokenizer: Tokenizer = estimate_tokens) -> None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"TokenBudget(max_tokens): must be an int >= 1, got {max_tokens!r}")
        self.max_tokens = max_tokens
        self.tokenizer = tokenizer

    def __repr__(self) -> str:
        return f"TokenBudget({self.max_tokens})"

    def tokens(self, message: Message) -> int:
        return message_tokens(message, self.tokenizer)

    def start(self, messages: Sequence[Message]) -> int:
        """Where the window of `messages` starts."""
        lead = leading_system(messages)
        fixed = sum(self.tokens(messages[i]) for i in range(lead))
        return budget_start(messages, lead, self.max_tokens - fixed, self.tokens)

    @hookimpl
    def agent_before_inference(self, ctx: Context) -> list[Patch] | None:
        messages = ctx.state.messages
        return _set_window(ctx.state.window_start, leading_system(messages), self.start(messages))


@final
class Summarize:
    """When a request would exceed `max_tokens`, summarise the older messages.

    The messages before the new start (and the previous summary) go to `summarizer`;
    the window then keeps the latest messages that fit in `keep_tokens` (default
    half of `max_tokens`) and the summary stands in for the rest. The summary
    travels in the `SetWindow` patch of the phase, so it is journaled: a resumed run
    never summarises the same messages again. `SUMMARIES` counts summarisations.

    Args:
        max_tokens: summarise when the leading system messages, the summary and the
            window together exceed this (counted like `TokenBudget`).
        summarizer: ``await summarizer(messages, previous_summary) -> str``; see
            `model_summarizer` to use a model.
        keep_tokens: the budget for the messages kept verbatim after summarising.
        tokenizer: ``tokenizer(text) -> int``.

    .. versionadded:: 0.1
    """

    name = "memory.window"

    def __init__(
        self,
        max_tokens: int,
        summarizer: Summarizer,
        *,
        keep_tokens: int | None = None,
        tokenizer: Tokenizer = estimate_tokens,
    ) -> None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 2:
            raise ValueError(f"Summarize(max_tokens): must be an int >= 2, got {max_tokens!r}")
        keep = max_tokens // 2 if keep_tokens is None else keep_tokens
        if isinstance(keep, bool) or not isinstance(keep, int) or not 0 < keep < max_tokens:
            raise ValueError(f"Summarize(keep_tokens): must be an int in 1..{max_tokens - 1}, got {keep_tokens!r}")
        if not callable(summarizer):
            raise TypeError(f"Summarize(summarizer): expected an async callable, got {summarizer!r}")
        self.max_tokens = max_tokens
        self.keep_tokens = keep
        self.summarizer = summarizer
        self.tokenizer = tokenizer

    def __repr__(self) -> str:
        return f"Summarize({self.max_tokens}, keep_tokens={self.keep_tokens})"

    def tokens(self, message: Message) -> int:
        return message_tokens(message, self.tokenizer)

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        runtime.add_state_key(SUMMARIES)

    @hookimpl
    async def agent_before_inference(self, ctx: Context) -> list[Patch] | None:
        state = ctx.state
        messages = state.messages
        lead = leading_system(messages)
        current = max(state.window_start, lead)
        fixed = sum(self.tokens(messages[i]) for i in range(lead))
        summary_tokens = self.tokenizer(state.summary) + _MESSAGE_OVERHEAD if state.summary else 0
        over = fixed + summary_tokens - self.max_tokens
        i = len(messages)
        while i > current and over <= 0:  # stops as soon as the request is known to be too big
            i -= 1
            over += self.tokens(messages[i])
        if over <= 0:
            return None
        start = budget_start(messages, current, self.keep_tokens - fixed, self.tokens)
        if start <= current:
            return None  # nothing older than the smallest window: nothing to summarise
        summary = await self.summarizer(messages[current:start], state.summary)
        if not isinstance(summary, str):
            raise TypeError(f"the summarizer {self.summarizer!r} returned {type(summary).__name__}, not str")
        return [patches.SetWindow(start, summary), patches.IncrementData(SUMMARIES)]


SUMMARY_PROMPT = (
    "You maintain the memory of a conversation between a user and an assistant that uses tools. "
    "Write a concise summary of the conversation below, merged with the previous summary if there is one. "
    "Keep facts, decisions, names, numbers, open questions and tool results the assistant may need later. "
    "Answer with the summary only."
)


def render(messages: Sequence[Message], previous: str = "") -> str:
    """A plain-text transcript of `messages` (after `previous`, if any) for a summarising model."""
    lines = [f"Previous summary:\n{previous}\n"] if previous else []
    for message in messages:
        if message.role == "tool":
            label = "tool error" if message.is_error else "tool result"
            lines.append(f"[{label} {message.tool_call_id}]: {message.content}")
            continue
        if message.content:
            lines.append(f"[{message.role}]: {message.content}")
        for call in message.tool_calls:
            lines.append(f"[{message.role} calls {call.name} {call.id}]: {json.dumps(dict(call.arguments))}")
    return "\n".join(lines)


class _Quiet:
    """A `Deltas` sink that drops streamed pieces (a summary is not part of the run's stream)."""

    def text(self, text: str) -> None:
        pass

    def tool_call(self, index: int, call_id: str, name: str, arguments: str) -> None:
        pass


def model_summarizer(
    executor: ModelExecutor,
    model: str,
    *,
    prompt: str = SUMMARY_PROMPT,
    settings: Mapping[str, Any] | None = None,
) -> Summarizer:
    """A `Summarizer` asking `executor` (any LLM executor, e.g. an OpenAI one) for the summary.

    Args:
        executor: the executor (an object with ``async infer(request, deltas)``).
        model: the model string put in the request.
        prompt: the system prompt.
        settings: provider settings for the request (e.g. ``{"max_tokens": 300}``).

    .. versionadded:: 0.1
    """
    if not hasattr(executor, "infer"):
        raise TypeError(f"model_summarizer(executor): {executor!r} has no infer(request, deltas) method")

    async def summarize(messages: Sequence[Message], previous: str) -> str:
        request = Request(
            model,
            (Message("system", prompt), Message("user", render(messages, previous))),
            (),
            "none",
            settings or {},
        )
        response = await executor.infer(request, _Quiet())
        return response.message.content

    return summarize
