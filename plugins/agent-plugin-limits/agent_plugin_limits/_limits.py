"""`Limits`: budgets and stop rules that end a run with outcome ``stopped``."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, final

import anyio

from agent_kernel import (
    Context,
    Message,
    Request,
    Response,
    RunState,
    RuntimeRegistrar,
    StateKey,
    ToolCall,
    ToolResult,
    hookimpl,
)
from agent_kernel.errors import ConfigurationError
from agent_kernel.patches import Block, IncrementData, Patch, SetData, Stop

__all__ = ["CODES", "Limits", "estimate_tokens"]

#: Every stop code `Limits` uses, with the option that produces it.
CODES: Mapping[str, str] = MappingProxyType(
    {
        "limit.steps": "max_steps",
        "limit.requests": "max_requests",
        "limit.tool_calls": "max_tool_calls",
        "limit.calls_per_tool": "max_calls_per_tool",
        "limit.tokens.input": "max_input_tokens",
        "limit.tokens.output": "max_output_tokens",
        "limit.tokens.total": "max_total_tokens",
        "limit.cost": "max_cost",
        "limit.duration": "max_duration",
        "stop.loop": "loop_detection",
        "stop.tool_errors": "max_consecutive_tool_errors",
        "stop.after_tool": "stop_after_tools",
        "stop.content": "stop_on_content",
    }
)

_EMPTY: Mapping[str, int] = MappingProxyType({})
Trip = tuple[str, str]


def _count(name: str, value: Any, minimum: int = 0) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum} or None, got {value!r}")
    return value


def _amount(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be a number >= 0 or None, got {value!r}")
    return float(value)


def _message_chars(message: Message) -> int:
    chars = len(message.content)
    for call in message.tool_calls:
        chars += len(call.name) + len(json.dumps(dict(call.arguments), default=str))
    return chars


def estimate_tokens(chars: int, chars_per_token: float = 4.0) -> int:
    """The documented heuristic: ``ceil(chars / chars_per_token)`` tokens for `chars` characters.

    .. versionadded:: 0.1
    """
    return math.ceil(chars / chars_per_token) if chars > 0 else 0


def _first_keep(earlier: Any, later: Any) -> Any:
    """Merge rule for the trip key: of two concurrent tool calls, the first in call order wins."""
    return earlier


@final
class Limits:
    """Budgets and stop rules for a run; each ends the run with outcome ``stopped``.

    ``outcome.stop.code`` says which rule fired (see `CODES`); ``outcome.stop.detail``
    says why, for humans. Every rule is off by default (None / empty).

    When rules are checked:

    * Before a call is made. A request that would *certainly* exceed a budget is not
      sent. At the end of a step that another step would follow, the run stops if
      the steps or requests are used up, the time is up, or the output tokens or the
      cost are already spent (so no empty step is begun for those). In
      ``agent_before_inference`` the same checks run again, plus the size of the
      request: the run stops if the tokens used plus the estimated input tokens of
      this request (see below) exceed the input-token or total-token budget, or its
      estimated input cost exceeds what is left of the cost budget. (That check waits
      for BeforeInference because StepEnd and StepStart patches of other plugins,
      such as a new context window, change what the request will carry.)
    * After a call. ``agent_after_inference`` adds the response's actual usage and
      cost; if that already exceeds a budget (or the answer matches
      `stop_on_content`) the run stops at once: the response's tool calls do not run.
    * Tool calls. ``agent_after_inference`` judges the response's tool calls in call
      order against `max_tool_calls`, `max_calls_per_tool` and `loop_detection`. A
      call beyond a budget is never executed: it gets a ``Block`` (the model sees the
      reason) and the run stops at the end of that step. Calls of the same step that
      are within budget still run, so every tool call of the conversation has a
      result. Exceeding a tool budget therefore *stops the run*; it does not merely
      refuse one call and carry on.
    * ``agent_after_tool_execute``: `max_consecutive_tool_errors` and
      `stop_after_tools` stop the run at once (the kernel then runs no further call
      of the step).

    Counting:

    * steps: ``ctx.step`` (the kernel's count). requests: responses received, the same
      as ``outcome.stats.llm_calls``; attempts that failed and were retried are not
      counted (bound those with ``agent_plugin_retry.Retry``).
    * tool calls: calls the model made that Limits let through, counted when the
      response arrives (a call another plugin then blocks or suspends still counts).
    * tokens: ``ctx.state.usage`` (what the executors reported), over the whole run.
    * cost: each response's usage at the price of ``response.model``, else of the
      run's model; a price is ``(input, output)`` per million tokens. A model with no
      price (exact, without its ``provider:`` prefix, or by the longest key it starts
      with, as in ``gpt-4o-mini`` for ``gpt-4o-mini-2024-07-18``) ends the run with
      an error naming it: an unpriced model must not slip past a cost budget.
    * duration: wall-clock seconds measured with ``anyio.current_time()`` (so trio's
      MockClock drives it in tests), summed over the run's invocations. Time between
      invocations (suspended for an approval, crashed, waiting to be resumed) is not
      counted. The elapsed time is saved at every step end and run end, so a crash
      loses at most the time since the last step end. Limits checks time between
      phases; it does not interrupt a call that is in flight (use
      ``agent.run(..., timeout=...)`` for a hard deadline).
    * loop detection: the same tool with the same arguments `loop_detection` times in
      a row (across steps); the call that makes it N is blocked and the run stops.
    * consecutive tool errors: error results in a row, in call order across steps; a
      success resets the count. Calls Limits itself blocked are not counted.
    * stop after tools: a successful (non-error) result of one of these tools.

    Input-token estimate (the documented heuristic, used only to refuse a request
    before it is sent): the previous request's reported input tokens, minus the
    context injected for that request alone, plus the previous answer's output tokens
    (it is sent again), plus ``ceil(characters / chars_per_token)`` for every
    message added since and the context injected for the next request. Before the
    first response, or when the context window (`patches.SetWindow`) changed, the
    characters of what the request will carry are counted instead. Tool schemas and
    per-message overhead are left out, so the estimate errs low: a request is refused
    only when even the estimate is over the budget. The work per step is
    proportional to what the step added, never to the run's length.

    Counters live in plugin state (`StateKey`s named ``"<name>.<counter>"``, declared
    through ``agent_register_runtime``), so they are journaled and survive ``resume``;
    give each `Limits` of one agent its own `name`.

    Args:
        max_steps: the most steps (``outcome.stats.steps`` never exceeds it, unless a
            run is resumed with a lower `max_steps`: its next StepStart stops it).
        max_tool_calls: the most tool calls executed over the run.
        max_requests: the most model responses over the run.
        max_input_tokens: the most input tokens over the run.
        max_output_tokens: the most output tokens over the run.
        max_total_tokens: the most input plus output tokens over the run.
        max_calls_per_tool: tool name to the most calls of that tool.
        max_duration: the most seconds the run may spend running.
        max_cost: the most money, in the unit of `prices`.
        prices: model string to ``(input_per_million_tokens, output_per_million_tokens)``.
        loop_detection: stop at the Nth identical tool call in a row (N >= 2).
        max_consecutive_tool_errors: stop after this many error results in a row.
        stop_after_tools: tool names that end the run once they succeed.
        stop_on_content: a regex (str or compiled); an answer matching it ends the run.
        chars_per_token: the estimate's characters per token.
        name: the plugin name, also the prefix of its state keys.

    Raises:
        ValueError: an option is out of range, or `max_cost` has no `prices`.
        TypeError: `stop_after_tools` is a single string.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        max_steps: int | None = None,
        max_tool_calls: int | None = None,
        max_requests: int | None = None,
        *,
        max_input_tokens: int | None = None,
        max_output_tokens: int | None = None,
        max_total_tokens: int | None = None,
        max_calls_per_tool: Mapping[str, int] | None = None,
        max_duration: float | None = None,
        max_cost: float | None = None,
        prices: Mapping[str, tuple[float, float]] | None = None,
        loop_detection: int | None = None,
        max_consecutive_tool_errors: int | None = None,
        stop_after_tools: Iterable[str] = (),
        stop_on_content: str | re.Pattern[str] | None = None,
        chars_per_token: float = 4.0,
        name: str = "limits",
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        self.name = name
        self.max_steps = _count("max_steps", max_steps)
        self.max_tool_calls = _count("max_tool_calls", max_tool_calls)
        self.max_requests = _count("max_requests", max_requests)
        self.max_input_tokens = _count("max_input_tokens", max_input_tokens)
        self.max_output_tokens = _count("max_output_tokens", max_output_tokens)
        self.max_total_tokens = _count("max_total_tokens", max_total_tokens)
        self.max_calls_per_tool = {
            k: _count(f"max_calls_per_tool[{k!r}]", v) for k, v in (max_calls_per_tool or {}).items()
        }
        self.max_duration = _amount("max_duration", max_duration)
        self.max_cost = _amount("max_cost", max_cost)
        self.prices = {model: self._price_pair(model, pair) for model, pair in (prices or {}).items()}
        if self.max_cost is not None and not self.prices:
            raise ValueError("max_cost needs prices={model: (input_per_mtok, output_per_mtok)}")
        self._bare_prices = {model.split(":", 1)[-1]: pair for model, pair in self.prices.items()}
        self.loop_detection = _count("loop_detection", loop_detection, minimum=2)
        self.max_consecutive_tool_errors = _count("max_consecutive_tool_errors", max_consecutive_tool_errors, minimum=1)
        if isinstance(stop_after_tools, str):
            raise TypeError(f"stop_after_tools is a collection of tool names, e.g. [{stop_after_tools!r}]")
        self.stop_after_tools = frozenset(stop_after_tools)
        self.stop_on_content = re.compile(stop_on_content) if isinstance(stop_on_content, str) else stop_on_content
        if (
            isinstance(chars_per_token, bool)
            or not isinstance(chars_per_token, (int, float))
            or not chars_per_token > 0
        ):
            raise ValueError(f"chars_per_token must be a positive number, got {chars_per_token!r}")
        self.chars_per_token = float(chars_per_token)
        self._judges_calls = (
            self.max_tool_calls is not None or bool(self.max_calls_per_tool) or self.loop_detection is not None
        )
        self._estimates = (
            self.max_input_tokens is not None or self.max_total_tokens is not None or self.max_cost is not None
        )

        def key(counter: str, type_: Any, default: Any, merge: Any = "error") -> StateKey[Any]:
            return StateKey(f"{name}.{counter}", type_, default, merge)

        self.REQUESTS: StateKey[int] = key("requests", int, 0)
        self.TOOL_CALLS: StateKey[int] = key("tool_calls", int, 0)
        self.PER_TOOL: StateKey[Mapping[str, int]] = key("per_tool", dict[str, int], _EMPTY)
        self.LAST_CALL: StateKey[tuple[str, str, int]] = key("last_call", tuple[str, str, int], ("", "", 0))
        self.REFUSED: StateKey[tuple[tuple[str, str, str], ...]] = key("refused", tuple[tuple[str, str, str], ...], ())
        self.ERRORS: StateKey[int] = key("consecutive_errors", int, 0, "last")
        self.COST: StateKey[float] = key("cost", float, 0.0)
        self.PROMPT: StateKey[tuple[int, int, int, int]] = key("prompt", tuple[int, int, int, int], (0, 0, 0, 0))
        self.CLOCK: StateKey[tuple[int, float, float] | None] = key("clock", tuple[int, float, float] | None, None)
        self.ELAPSED: StateKey[float] = key("elapsed", float, 0.0, "last")
        self.TRIP: StateKey[tuple[str, str] | None] = key("trip", tuple[str, str] | None, None, _first_keep)
        self.state_keys: tuple[StateKey[Any], ...] = (
            self.REQUESTS,
            self.TOOL_CALLS,
            self.PER_TOOL,
            self.LAST_CALL,
            self.REFUSED,
            self.ERRORS,
            self.COST,
            self.PROMPT,
            self.CLOCK,
            self.ELAPSED,
            self.TRIP,
        )

    def __repr__(self) -> str:
        rules = {
            k: v
            for k, v in vars(self).items()
            if not k.startswith("_")
            and k.islower()
            and k not in ("name", "prices", "state_keys", "chars_per_token")
            and v is not None
            and v != {}
            and v != frozenset()
        }
        return f"Limits({', '.join(f'{k}={v!r}' for k, v in rules.items())}, name={self.name!r})"

    @staticmethod
    def _price_pair(model: str, pair: Any) -> tuple[float, float]:
        try:
            price_in, price_out = pair
        except (TypeError, ValueError):
            raise ValueError(f"prices[{model!r}] must be (input_per_mtok, output_per_mtok), got {pair!r}") from None
        return (_amount(f"prices[{model!r}][0]", price_in) or 0.0, _amount(f"prices[{model!r}][1]", price_out) or 0.0)

    # ------------------------------------------------------------------ measures

    def price(self, *models: str) -> tuple[float, float]:
        """The ``(input, output)`` price per million tokens of the first of `models` that has one.

        Raises:
            ConfigurationError: none of them has a price.
        """
        for model in models:
            if not model:
                continue
            if model in self.prices:
                return self.prices[model]
            bare = model.split(":", 1)[-1]
            if bare in self._bare_prices:
                return self._bare_prices[bare]
            prefixes = [key for key in self._bare_prices if bare.startswith(key)]
            if prefixes:
                return self._bare_prices[max(prefixes, key=len)]
        wanted = ", ".join(repr(m) for m in models if m)
        raise ConfigurationError(
            f"{self.name}: max_cost is set but there is no price for model {wanted}; "
            f"add it to prices= (priced: {', '.join(sorted(self.prices))})"
        )

    def elapsed(self, ctx: Context) -> float:
        """Seconds the run has spent running, this invocation included.

        The clock is ``(invocation, start, elapsed before it)``, set at RunStart; a
        clock left by an earlier invocation (whose start is another process's time)
        is not read: only the saved elapsed time counts then.
        """
        clock = ctx.state.get(self.CLOCK)
        if clock is None or clock[0] != ctx.attempt:
            return float(ctx.state.get(self.ELAPSED))
        _, started, before = clock
        return before + (anyio.current_time() - started)

    def estimate(self, state: RunState) -> int:
        """The estimated input tokens of the next request (see the class docstring).

        Builds on the previous request's reported size while the context window
        (`patches.SetWindow`) is unchanged, reading only the messages added since;
        otherwise (first request, new window) it counts the characters of what the
        request will carry, as the kernel builds it.
        """
        tokens, seen, start, summary = state.get(self.PROMPT)
        messages = state.messages
        chars = sum(len(text) for text in state.context)
        if seen and (start, summary) == (state.window_start, len(state.summary)):
            begin = seen  # only what was added since the last response
        else:
            tokens, begin = 0, 0
            if state.window_start:
                while begin < len(messages) and messages[begin].role == "system":
                    chars += _message_chars(messages[begin])
                    begin += 1
                chars += len(state.summary)
                begin = max(begin, state.window_start)
        for i in range(begin, len(messages)):
            chars += _message_chars(messages[i])
        return tokens + estimate_tokens(chars, self.chars_per_token)

    # ------------------------------------------------------------------ rules

    def _refuse_next_request(self, ctx: Context, *, next_step: bool) -> Trip | None:
        """Why the next request (of the next step, if `next_step`) may not be made, or None.

        With `next_step` (at RunStart and StepEnd) only what no other plugin's patch of
        the same phase can change is checked: steps, requests, time, output tokens and
        cost already spent. The size of the next request is judged in BeforeInference,
        where the messages, context and window of StepEnd and StepStart are known.
        """
        state = ctx.state
        if next_step and self.max_steps is not None and state.step >= self.max_steps:
            return (
                "limit.steps",
                f"{state.step} of max_steps={self.max_steps} steps are done; another step would exceed it",
            )
        if self.max_requests is not None:
            requests = state.get(self.REQUESTS)
            if requests >= self.max_requests:
                return "limit.requests", f"{requests} of max_requests={self.max_requests} requests are used"
        if self.max_duration is not None:
            elapsed = self.elapsed(ctx)
            if elapsed >= self.max_duration:
                return "limit.duration", f"the run has run {elapsed:.3f} s of max_duration={self.max_duration:g} s"
        usage = state.usage
        if self.max_output_tokens is not None and usage.output_tokens >= self.max_output_tokens:
            return (
                "limit.tokens.output",
                f"{usage.output_tokens} of max_output_tokens={self.max_output_tokens} output tokens are used",
            )
        if self.max_cost is not None and state.get(self.COST) >= self.max_cost:
            return "limit.cost", f"{state.get(self.COST):.6g} of max_cost={self.max_cost:g} is spent"
        if next_step or not self._estimates:
            return None
        estimate = self.estimate(state)
        if self.max_input_tokens is not None and usage.input_tokens + estimate > self.max_input_tokens:
            return "limit.tokens.input", (
                f"the next request needs about {estimate} input tokens and {usage.input_tokens} of "
                f"max_input_tokens={self.max_input_tokens} are used"
            )
        if self.max_total_tokens is not None and usage.total_tokens + estimate > self.max_total_tokens:
            return "limit.tokens.total", (
                f"the next request needs about {estimate} input tokens and {usage.total_tokens} of "
                f"max_total_tokens={self.max_total_tokens} are used"
            )
        if self.max_cost is not None:
            cost = state.get(self.COST)
            next_cost = estimate * self.price(state.model)[0] / 1e6
            if cost + next_cost > self.max_cost:
                return "limit.cost", (
                    f"{cost:.6g} of max_cost={self.max_cost:g} is spent and the next request costs about {next_cost:.6g}"
                )
        return None

    def _exceeded(self, state: RunState, response: Response, cost: float | None) -> Trip | None:
        """Which budget the usage, including `response`, exceeds (or None)."""
        usage = state.usage + response.usage
        for code, used, limit in (
            ("limit.tokens.input", usage.input_tokens, self.max_input_tokens),
            ("limit.tokens.output", usage.output_tokens, self.max_output_tokens),
            ("limit.tokens.total", usage.total_tokens, self.max_total_tokens),
        ):
            if limit is not None and used > limit:
                return code, f"{used} tokens are used, over {CODES[code]}={limit}"
        if cost is not None and self.max_cost is not None and cost > self.max_cost:
            return "limit.cost", f"{cost:.6g} is spent, over max_cost={self.max_cost:g}"
        if self.stop_on_content is not None and self.stop_on_content.search(response.message.content):
            return "stop.content", f"the model's answer matches stop_on_content={self.stop_on_content.pattern!r}"
        return None

    def _judge_calls(self, state: RunState, calls: tuple[ToolCall, ...]) -> list[Patch]:
        """Count the response's calls; refuse those beyond a budget, in call order."""
        count = state.get(self.TOOL_CALLS)
        per_tool = state.get(self.PER_TOOL)
        updated: dict[str, int] | None = None
        last = state.get(self.LAST_CALL)
        refused: list[tuple[str, str, str]] = []
        for call in calls:
            trip: Trip | None = None
            if self.loop_detection is not None:
                digest = hashlib.sha256(
                    json.dumps(dict(call.arguments), sort_keys=True, default=str).encode()
                ).hexdigest()[:16]
                streak = last[2] + 1 if (last[0], last[1]) == (call.name, digest) else 1
                last = (call.name, digest, streak)
                if streak >= self.loop_detection:
                    trip = (
                        "stop.loop",
                        f"the model called {call.name!r} with the same arguments {streak} times in a row",
                    )
            if trip is None and self.max_tool_calls is not None and count >= self.max_tool_calls:
                trip = "limit.tool_calls", f"{count} of max_tool_calls={self.max_tool_calls} tool calls are used"
            limit = self.max_calls_per_tool.get(call.name)
            used = (updated or per_tool).get(call.name, 0)
            if trip is None and limit is not None and used >= limit:
                trip = "limit.calls_per_tool", f"{used} of max_calls_per_tool[{call.name!r}]={limit} calls are used"
            if trip is not None:
                refused.append((call.id, *trip))
                continue
            count += 1
            if limit is not None:
                updated = dict(updated or per_tool)
                updated[call.name] = used + 1
        out: list[Patch] = []
        if self.max_tool_calls is not None:
            out.append(SetData(self.TOOL_CALLS, count))
        if updated is not None:
            out.append(SetData(self.PER_TOOL, updated))
        if self.loop_detection is not None:
            out.append(SetData(self.LAST_CALL, last))
        if refused:
            # A refusal always ends the run at the end of this step, so the list never
            # outlives the step whose call ids it names.
            out.append(SetData(self.REFUSED, tuple(refused)))
            out.append(SetData(self.TRIP, (refused[0][1], refused[0][2])))
        return out

    @staticmethod
    def _continues(state: RunState) -> bool:
        """Whether the run would go on to another step after this one."""
        last = state.messages[-1] if len(state.messages) else None
        return last is None or last.role != "assistant" or bool(last.tool_calls)

    def _refused(self, state: RunState, call_id: str) -> tuple[str, str, str] | None:
        for refused in state.get(self.REFUSED):
            if refused[0] == call_id:
                return refused
        return None

    # ------------------------------------------------------------------ hooks

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        for key in self.state_keys:
            runtime.add_state_key(key)

    @hookimpl
    def agent_run_start(self, ctx: Context) -> list[Patch] | None:
        state = ctx.state
        out: list[Patch] = []
        if self.max_duration is not None:
            out.append(SetData(self.CLOCK, (ctx.attempt, anyio.current_time(), float(state.get(self.ELAPSED)))))
        if self.max_cost is not None:
            self.price(state.model)  # an unpriced model fails before anything is spent
        if state.step == 0 and not ctx.resumed:
            trip = self._refuse_next_request(ctx, next_step=True)
            if trip is not None:
                out.append(Stop(*trip))
        return out or None

    @hookimpl
    def agent_step_start(self, ctx: Context) -> list[Patch] | None:
        if self.max_steps is not None and ctx.step > self.max_steps:
            return [Stop("limit.steps", f"step {ctx.step} would exceed max_steps={self.max_steps}")]
        return None

    @hookimpl
    def agent_before_inference(self, ctx: Context, request: Request) -> list[Patch] | None:
        trip = self._refuse_next_request(ctx, next_step=False)
        return [Stop(*trip)] if trip is not None else None

    @hookimpl
    def agent_after_inference(self, ctx: Context, response: Response) -> list[Patch] | None:
        state = ctx.state
        out: list[Patch] = []
        if self.max_requests is not None:
            out.append(IncrementData(self.REQUESTS))
        if self._estimates:
            reported = response.usage
            transient = estimate_tokens(sum(len(text) for text in state.context), self.chars_per_token)
            prompt = max(0, reported.input_tokens - transient) + reported.output_tokens
            window = (state.window_start, len(state.summary))
            out.append(SetData(self.PROMPT, (prompt, len(state.messages) + 1, *window)))
        cost = None
        if self.max_cost is not None:
            price_in, price_out = self.price(response.model, state.model)
            cost = (
                state.get(self.COST)
                + (response.usage.input_tokens * price_in + response.usage.output_tokens * price_out) / 1e6
            )
            out.append(SetData(self.COST, cost))
        trip = self._exceeded(state, response, cost)
        if trip is not None:
            out.append(Stop(*trip))
        elif self._judges_calls and response.message.tool_calls:
            out.extend(self._judge_calls(state, response.message.tool_calls))
        return out or None

    @hookimpl
    def agent_before_tool_execute(self, ctx: Context, call: ToolCall) -> list[Patch] | None:
        refused = self._refused(ctx.state, call.id)
        if refused is not None:
            return [Block(f"Not run: {refused[2]}. The run stops after this step ({refused[1]}).")]
        if self.max_duration is not None:
            elapsed = self.elapsed(ctx)
            if elapsed >= self.max_duration:
                detail = f"the run has run {elapsed:.3f} s of max_duration={self.max_duration:g} s"
                return [
                    Block(f"Not run: {detail}. The run stops after this step."),
                    SetData(self.TRIP, ("limit.duration", detail)),
                ]
        return None

    @hookimpl
    def agent_after_tool_execute(self, ctx: Context, call: ToolCall, result: ToolResult) -> list[Patch] | None:
        state = ctx.state
        if state.get(self.REFUSED) and self._refused(state, call.id) is not None:
            return None
        out: list[Patch] = []
        if self.max_consecutive_tool_errors is not None:
            if result.is_error:
                errors = state.get(self.ERRORS) + 1
                out.append(IncrementData(self.ERRORS))
                if errors >= self.max_consecutive_tool_errors:
                    out.append(
                        Stop(
                            "stop.tool_errors",
                            f"{errors} tool calls in a row failed (max_consecutive_tool_errors={self.max_consecutive_tool_errors})",
                        )
                    )
            elif state.get(self.ERRORS):
                out.append(SetData(self.ERRORS, 0))
        if call.name in self.stop_after_tools and not result.is_error:
            out.append(Stop("stop.after_tool", f"{call.name!r} succeeded and is in stop_after_tools"))
        return out or None

    @hookimpl
    def agent_step_end(self, ctx: Context) -> list[Patch] | None:
        state = ctx.state
        out: list[Patch] = []
        if self.max_duration is not None:
            out.append(SetData(self.ELAPSED, self.elapsed(ctx)))
        if state.stop is None:
            trip = state.get(self.TRIP)
            errors = state.get(self.ERRORS)
            if trip is not None:
                out.append(Stop(*trip))
            elif self.max_consecutive_tool_errors is not None and errors >= self.max_consecutive_tool_errors:
                # tool calls that ran concurrently all saw the count from before the step
                out.append(
                    Stop(
                        "stop.tool_errors",
                        f"{errors} tool calls in a row failed (max_consecutive_tool_errors={self.max_consecutive_tool_errors})",
                    )
                )
            elif self._continues(state):
                trip = self._refuse_next_request(ctx, next_step=True)
                if trip is not None:
                    out.append(Stop(*trip))
        return out or None

    @hookimpl
    def agent_run_end(self, ctx: Context) -> list[Patch] | None:
        if self.max_duration is not None:
            return [SetData(self.ELAPSED, self.elapsed(ctx))]
        return None
