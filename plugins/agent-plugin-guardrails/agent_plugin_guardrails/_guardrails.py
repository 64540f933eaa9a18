"""`Guardrails`: input processors, output checks and secret redaction for agent runs."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Generator, Iterable
from typing import Any, final

import attrs

from agent_kernel import Context, Message, Response, RunState, RuntimeRegistrar, StateKey, hookimpl
from agent_kernel.patches import AppendMessages, IncrementData, Patch, ReplaceMessage, SetData, Stop

from ._verdicts import (
    Ask,
    Block,
    InputCheck,
    Retry,
    Rewrite,
    input_verdict,
    output_verdict,
    processors,
)
from .redaction import PatternLike, Redactor, redact_structure

__all__ = ["Guardrails"]

Flow = Generator[Ask, Any, list[Patch] | None]
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@final
class Guardrails:
    """Checks the user's input, the model's final answer, and redacts secrets.

    **Input processors** run once per run, in the RunStart of the run's first
    invocation (before the first step, so before any request is sent), on the text
    of the user's message. Their decision is kept in run state (`INPUT`, journaled
    with that RunStart), so a resumed run does not run them again; only if the
    first invocation died before its RunStart committed do they run in the resume. A processor is ``def`` or ``async def``
    ``(text, state) -> Pass() | Block(reason, code=None) | Rewrite(text) | None``;
    they run in order, each seeing the text as rewritten by the ones before.

    * `Block`: the run ends ``stopped`` before the first step with code
      ``"<name>.input.<processor>"`` (or the Block's own `code`) and the reason as
      detail. Later processors do not run.
    * `Rewrite`: once all processors have passed, the user's message is replaced
      (``patches.ReplaceMessage``) by the rewritten text, so the model never sees
      the original. The journal's ``Started`` entry still holds the original input
      (only kernel-side redaction, below, can keep it out of storage). A Block from
      a later processor wins over a rewrite.

    **Output checks** run on every final answer (a response without tool calls), in
    ``agent_after_inference``: ``(text, state) -> Pass() | Block(reason, code=None) |
    Retry(feedback) | None``, ``def`` or ``async def``, in order; the first verdict
    that is not a pass decides.

    * `Retry`: `feedback` is appended as a user message, so the loop asks the model
      again (at most `max_output_retries` times per run).
    * `Block`, or a `Retry` beyond `max_output_retries`: the run ends ``stopped``
      with code ``"<name>.output.<check>"`` (or the Block's `code`). Unless
      `blocked_output` is None, an assistant message with that text is appended
      after the refused answer, so ``outcome.output`` is not the refused text (the
      refused answer stays in the transcript and the journal).

    **Redaction** (`redact`): secret-looking values (API keys such as ``sk-...``,
    AWS keys ``AKIA...``, GitHub tokens ``ghp_...``, bearer tokens, ``password=...``
    pairs, private key blocks, and the regexes in `patterns`; in any string, mapping
    keys included, such as a key of a tool's arguments) should be replaced
    before messages, events and journal entries are stored: `redact` (the method) is
    registered with ``RuntimeRegistrar.add_redactor``, so the kernel passes every
    journal entry through it before the entry is folded and journaled, and every
    event before it is emitted. A secret split across two streamed text deltas is
    not caught in the deltas (it is in the committed answer).
    `agent_plugin_guardrails.checks.no_secrets` refuses secret-looking input or
    answers outright instead.

    Args:
        input: input processors: functions or ``(name, function)`` pairs.
        output: output checks: functions or ``(name, function)`` pairs.
        redact: True for a `Redactor` with the built-in rules plus `patterns`, a
            `Redactor` of your own, or False.
        patterns: extra secret patterns (regexes, ``(name, regex)`` pairs or `Rule`s).
        name: the plugin's name; prefixes its stop codes and state keys.
        max_output_retries: how many `Retry` verdicts a run may act on (>= 0).
        blocked_output: the assistant text appended when an answer is refused, or None.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        input: Iterable[Any] = (),
        output: Iterable[Any] = (),
        redact: bool | Redactor = True,
        patterns: Iterable[PatternLike] = (),
        name: str = "guardrails",
        *,
        max_output_retries: int = 2,
        blocked_output: str | None = "[The answer was withheld by a guardrail.]",
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"name must be letters, digits, '_', '.' or '-', got {name!r}")
        if isinstance(max_output_retries, bool) or not isinstance(max_output_retries, int) or max_output_retries < 0:
            raise ValueError(f"max_output_retries must be an int >= 0, got {max_output_retries!r}")
        patterns = tuple(patterns)
        if isinstance(redact, Redactor):
            if patterns:
                raise ValueError(
                    "give patterns= to your own Redactor, not to Guardrails, when passing redact=Redactor(...)"
                )
            self.redactor: Redactor | None = redact
        elif redact:
            self.redactor = Redactor(patterns)
        elif patterns:
            raise ValueError("patterns= are redaction patterns: they need redact=True")
        else:
            self.redactor = None
        self.name = name
        self.input = processors(input, "input")
        self.output = processors(output, "output")
        self.max_output_retries = max_output_retries
        self.blocked_output = blocked_output

        #: What the input processors decided (None until they ran).
        self.INPUT: StateKey[InputCheck | None] = StateKey(f"{name}.input", InputCheck, None)
        #: How many output `Retry` verdicts were acted on.
        self.RETRIES: StateKey[int] = StateKey(f"{name}.output_retries", int, 0)

        # A phase hook's colour is fixed by its definition (DESIGN §3): async only when a
        # processor must be awaited, so sync-only guardrails keep the kernel's fast path.
        if any(p.is_async for p in self.input):
            self.agent_run_start = _async_hook(self._input_flow, "ctx")  # type: ignore[method-assign]
        if any(p.is_async for p in self.output):
            self.agent_after_inference = _async_hook(self._output_flow, "ctx", "response")  # type: ignore[method-assign]

    def __repr__(self) -> str:
        names = [p.name for p in self.input], [p.name for p in self.output]
        return (
            f"Guardrails(input={names[0]}, output={names[1]}, redact={self.redactor is not None}, name={self.name!r})"
        )

    def redact(self, value: Any) -> Any:
        """`value` (a journal entry, an event, a message, a string...) with secrets replaced.

        What the kernel should call on every entry and event (see `redact_structure`);
        `value` itself when there is nothing to redact or redaction is off.
        """
        if self.redactor is None:
            return value
        return redact_structure(value, self.redactor)

    # ------------------------------------------------------------------ registration

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        runtime.add_state_key(self.INPUT)
        runtime.add_state_key(self.RETRIES)
        if self.redactor is not None:
            runtime.add_redactor(self.redact)

    # ------------------------------------------------------------------ phases

    @hookimpl
    def agent_run_start(self, ctx: Context) -> list[Patch] | None:
        return _drive(self._input_flow(ctx))

    @hookimpl
    def agent_after_inference(self, ctx: Context, response: Response) -> list[Patch] | None:
        return _drive(self._output_flow(ctx, response))

    # ------------------------------------------------------------------ flows
    # A flow yields (processor, text, state) and receives the processor's verdict;
    # `_drive` calls sync processors, `_adrive` also awaits async ones.

    def _input_flow(self, ctx: Context) -> Flow:
        state = ctx.state
        if not self.input or state.step != 0 or state.get(self.INPUT) is not None:
            return None
        found = _last_user_message(state)
        if found is None:
            return None
        index, original = found
        text, rewriter = original.content, ""
        for processor in self.input:
            verdict = input_verdict(processor, (yield processor, text, state))
            if isinstance(verdict, Block):
                code = verdict.code or f"{self.name}.input.{processor.name}"
                return [SetData(self.INPUT, InputCheck("blocked", processor.name, code)), Stop(code, verdict.reason)]
            if isinstance(verdict, Rewrite) and verdict.text != text:
                text, rewriter = verdict.text, processor.name
        if text == original.content:
            return [SetData(self.INPUT, InputCheck("passed"))]
        return [
            SetData(self.INPUT, InputCheck("rewritten", rewriter)),
            ReplaceMessage(index, attrs.evolve(original, content=text)),
        ]

    def _output_flow(self, ctx: Context, response: Response) -> Flow:
        if not self.output or response.message.tool_calls:
            return None
        state = ctx.state
        text = response.message.content
        for check in self.output:
            verdict = output_verdict(check, (yield check, text, state))
            if isinstance(verdict, Block):
                return self._refuse(verdict.code or f"{self.name}.output.{check.name}", verdict.reason)
            if isinstance(verdict, Retry):
                used = state.get(self.RETRIES)
                if used >= self.max_output_retries:
                    retries = "retry" if used == 1 else "retries"
                    detail = f"{verdict.feedback} (still failing after {used} {retries})"
                    return self._refuse(f"{self.name}.output.{check.name}", detail)
                return [IncrementData(self.RETRIES), AppendMessages((Message("user", verdict.feedback),))]
        return None

    def _refuse(self, code: str, detail: str) -> list[Patch]:
        out: list[Patch] = [Stop(code, detail)]
        if self.blocked_output is not None:
            out.insert(0, AppendMessages((Message("assistant", self.blocked_output),)))
        return out


def _last_user_message(state: RunState) -> tuple[int, Message] | None:
    messages = state.messages
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            return i, messages[i]
    return None


def _drive(flow: Flow) -> list[Patch] | None:
    """Run a flow with sync processors only."""
    try:
        processor, text, state = next(flow)
        while True:
            processor, text, state = flow.send(processor.function(text, state))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def _adrive(flow: Flow) -> list[Patch] | None:
    """Run a flow, awaiting what async processors return."""
    try:
        processor, text, state = next(flow)
        while True:
            verdict = processor.function(text, state)
            if processor.is_async and inspect.isawaitable(verdict):
                verdict = await verdict
            processor, text, state = flow.send(verdict)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _async_hook(make_flow: Callable[..., Flow], *argnames: str) -> Callable[..., Any]:
    """An ``async def`` hook implementation taking `argnames` and driving `make_flow`."""
    if argnames == ("ctx",):

        async def hook(ctx: Context) -> list[Patch] | None:
            return await _adrive(make_flow(ctx))

    else:

        async def hook(ctx: Context, response: Response) -> list[Patch] | None:  # type: ignore[misc]
            return await _adrive(make_flow(ctx, response))

    return hookimpl(hook)
