"""The runner: the orchestration that advances one invocation of a run.

`_Run` extends the `Cursor` (``_cursor.py``: where the run is, and the pure decision
of what comes next) with the side effects: it calls the hooks, the model and the
tools, commits each entry they produce (`commit`: buffer + `Cursor.apply`) and writes
buffered entries to the journal (`flush`) before every side effect: an inference, a
tool call, the end of the invocation.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, nullcontext
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from . import events as ev
from ._cursor import (
    AFTER_INFERENCE,
    APPROVE,
    BEFORE_INFERENCE,
    BEFORE_TOOLS,
    INFER,
    RUN_TOOLS,
    STEP_END,
    STEP_END_AFTER_TOOLS,
    STEP_START,
    SUSPENDED,
    Cursor,
)
from ._fold import merge_concurrent
from ._log import Chain
from ._outcome import Outcome, Stats
from ._plugins import HookFailed, PhaseHook
from ._registry import ToolContext
from ._state import (
    Approve,
    Decision,
    Deny,
    Message,
    Request,
    Response,
    RunState,
    ToolCall,
    ToolResult,
    ToolSpec,
)
from .errors import (
    InferenceError,
    JournalAppendFailed,
    MissingComponent,
    PatchConflict,
    PluginError,
    StaleAttempt,
    ToolInputError,
    ToolSuspended,
    UnknownRequest,
)
from .hookspecs import Context, Fallback, Retry
from .journal import (
    FINISHED,
    Committed,
    Decided,
    Ended,
    Entry,
    ErrorInfo,
    Inferred,
    Intended,
    Retried,
    Started,
    ToolDone,
    Waiting,
)
from .patches import Checking, Patch, Stop

if TYPE_CHECKING:
    from ._wiring import Wiring

_NOTHING: tuple[tuple[Patch, ...], tuple[str, ...]] = ((), ())  # a phase call that returned no patch
_NO_WRAP: AbstractAsyncContextManager[Any] = nullcontext()  # when no plugin wraps the awaited work
_NO_SCOPE = nullcontext()  # an invocation without a timeout
_NO_DECISIONS: Mapping[str, Decision] = MappingProxyType({})  # a tool called for the first time
UNKNOWN_OUTCOME = (
    "The outcome of this tool call is unknown: the run was interrupted while it ran and "
    "the tool is not idempotent, so it was not run again. Check before retrying."
)


class _Failure(Exception):
    """Ends the invocation with outcome error and this `ErrorInfo`."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info.message)
        self.info = info


class _Resource:
    """Wraps an `agent_wrap_run` manager so that its failures end the run as errors of that hook."""

    __slots__ = ("manager",)

    def __init__(self, manager: Any) -> None:
        self.manager = manager

    def _failure(self, doing: str, exc: Exception) -> _Failure:
        message = f"run resource {self.manager!r} failed to {doing}: {type(exc).__name__}: {exc}"
        return _Failure(ErrorInfo(message, hook="agent_wrap_run", type=type(exc).__name__))

    async def __aenter__(self) -> Any:
        try:
            return await self.manager.__aenter__()
        except Exception as exc:
            raise self._failure("start", exc) from exc

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.manager.__aexit__(*exc_info)
        except Exception as exc:
            if exc is exc_info[1]:
                raise
            raise self._failure("close", exc) from exc


class _Deltas:
    """The `Deltas` sink given to executors: turns pieces into events."""

    __slots__ = ("run",)

    def __init__(self, run: _Run) -> None:
        self.run = run

    def text(self, text: str) -> None:
        if self.run.listening:
            self.run.emit(ev.TextDelta, text)

    def tool_call(self, index: int, call_id: str, name: str, arguments: str) -> None:
        if self.run.listening:
            self.run.emit(ev.ToolCallDelta, index, call_id, name, arguments)


OFF_LOOP_REDACTION = 64 * 1024  # characters of a tool result from which it is redacted in a worker thread


class _Run(Cursor):
    """One invocation of one run: the orchestration that performs the side effects.

    The cursor it extends says where the run is and what comes next; this class calls
    the hooks, the model and the tools, commits what they return and writes it.
    Private: `Agent` is the public face.
    """

    def __init__(self, wiring: Wiring, run_id: str, sink: Callable[[ev.Event], None] | None) -> None:
        super().__init__(run_id, wiring.model or "")
        self.wiring = wiring
        self.attempt = 0  # set from the Started entry once the run is claimed
        self.journal_failed = False  # an append failed: this invocation writes nothing more
        self.journal = wiring.journal
        self.sink = sink
        self.observers = list(wiring.observers)
        self.specs = wiring.specs_by_name
        self.redactors = wiring.redactors
        self.listening = sink is not None or bool(self.observers)
        self.buffer: list[Entry] = []
        self.lock = anyio.Lock()
        self.concurrent = False  # true while tool calls of a step run concurrently
        self.written = 0  # entries in the journal as this attempt saw it: where its next append goes
        self.event_base = -1
        self.event_n = 0
        self.preview: tuple[RunState | None, Request | None] = (None, None)
        # quiet phases passed, with the position they were passed at (`close_phase`)
        self.tail: list[tuple[int, str, int, str | None]] = []

    # ------------------------------------------------------------------ committing

    def _redacted(self, entry: Entry) -> Entry:
        for redact in self.redactors:
            entry = redact(entry)
        return entry

    def commit(self, entry: Entry, *, redacted: bool = False) -> None:
        """Journal `entry` (through the redactors unless it has passed them) and fold it in."""
        if self.redactors and not redacted:
            entry = self._redacted(entry)
        self.buffer.append(entry)
        self.fold_entry(entry)

    async def flush(self) -> None:
        """Write buffered entries to the journal (before any side effect).

        While tool calls run concurrently, a lock keeps appends in commit order;
        otherwise appends cannot overlap and the lock (a checkpoint) is skipped.
        """
        if not self.buffer:
            return
        if self.concurrent:
            async with self.lock:
                if self.buffer:
                    await self._append()
        else:
            await self._append()

    async def _append(self) -> None:
        """Append the buffer; after a failure nothing more is written (no gap in the journal)."""
        if self.journal_failed:
            raise JournalAppendFailed("an earlier append of this invocation failed")
        batch, self.buffer = self.buffer, []  # entries committed while this append waits go in the next one
        try:
            await self.journal.append(self.run_id, self.attempt, batch, at=self.written)
        except StaleAttempt:
            self.journal_failed = True
            raise
        except Exception as exc:
            self.journal_failed = True
            raise JournalAppendFailed(f"journal {type(self.journal).__name__}: {type(exc).__name__}: {exc}") from exc
        except BaseException:  # cancelled before the journal took the batch: the final flush writes it
            self.buffer[:0] = batch
            raise
        self.written += len(batch)

    # ------------------------------------------------------------------ events

    def emit(self, kind: type[ev.Event], *fields: Any) -> None:
        if self.position != self.event_base:
            self.event_base, self.event_n = self.position, 0
        event = kind((self.position << 32) + self.event_n, self.run_id, *fields)
        for redact in self.redactors:
            event = redact(event)
        self.event_n += 1
        if self.sink is not None:
            try:
                self.sink(event)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.sink = None  # the stream's consumer has gone; the run goes on
        for observer in list(self.observers):
            function, plugin = observer
            try:
                function(event)
            except Exception:
                self.observers.remove(observer)
                self.wiring.log.exception("observer %s.agent_on_event raised; disabled for this run", plugin)
        self.listening = self.sink is not None or bool(self.observers)

    # ------------------------------------------------------------------ hooks

    def context(self, phase: str, step: int | None = None) -> Context:
        state = self.state
        step = state.step if step is None else step
        return Context(self.run_id, state, step, self.attempt > 1, self.attempt, phase, self.specs)

    async def call_phase(self, hook: PhaseHook, args: tuple[Any, ...]) -> tuple[tuple[Patch, ...], tuple[str, ...]]:
        """Call a phase hook that has implementations (callers skip quiet phases and empty
        hooks first, so a context is built only when needed); return its validated
        patches and their plugins, in call order."""
        results = hook.call_sync(args)
        if not results:
            return _NOTHING
        if hook.is_async:
            results = await self._await_all(hook, results)
        patch_list: list[Patch] = []
        sources: list[str] = []
        wiring = self.wiring
        checking = Checking(self.state.messages, wiring.state_keys, wiring.codec, wiring.state_types)
        for plugin, result in results:
            if result is None:
                continue
            valid = hook.validate(plugin, result, checking)
            patch_list.extend(valid)
            sources.extend([plugin] * len(valid))
        return tuple(patch_list), tuple(sources)

    async def _await_all(self, hook: PhaseHook, results: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        """Await the coroutines among `results` concurrently, keeping their positions."""
        out: list[tuple[str, Any]] = list(results)
        pending = [i for i, (_, r) in enumerate(results) if hasattr(r, "__await__")]

        async def one(i: int) -> None:
            plugin, coroutine = results[i]
            try:
                out[i] = (plugin, await coroutine)
            except Exception as exc:
                raise HookFailed(plugin, hook.name, exc) from exc

        if len(pending) == 1:
            await one(pending[0])
        else:
            try:
                async with anyio.create_task_group() as tg:
                    for i in pending:
                        tg.start_soon(one, i)
            except BaseException as group:
                first = _first_hook_failure(group)
                if first is None:
                    raise
                raise first from None
        return out

    async def run_phase(self, phase: str, *args: Any, step: int | None = None) -> None:
        """Call `phase`'s hook with a context and `args`, and commit what it returned; a
        quiet phase (no plugin implements it) is passed without either."""
        step = self.state.step if step is None else step
        if phase in self.quiet:
            self.close_phase(phase, step, *_NOTHING)
            return
        hook = self.wiring.phases[phase]
        self.close_phase(phase, step, *await self.call_phase(hook, (self.context(phase, step), *args)))

    def close_phase(
        self, phase: str, step: int, patch_list: tuple[Patch, ...], sources: tuple[str, ...], call_id: str | None = None
    ) -> None:
        """Commit a phase with its patches; a quiet phase (`Started.quiet`) without any is
        passed unjournaled (the next entry implies it: `Cursor.catch_up`)."""
        if patch_list or phase not in self.quiet:
            self.commit(Committed(phase, step, patch_list, sources, call_id))
            return
        tail = self.tail
        if tail and tail[-1][0] != self.position:
            tail.clear()  # an entry written since implies those
        tail.append((self.position, phase, step, call_id))
        self._fold_phase(phase, step, (), (), call_id)

    def _write_tail(self) -> None:
        """Journal the quiet phases passed since the last entry, before RunEnd: only a
        finished run's `Ended` implies them, and only when no RunEnd entry comes first."""
        tail, self.tail = self.tail, []
        last = self.position
        for position, phase, step, call_id in tail:
            if position == last:  # already folded: journaled, not applied again
                entry: Entry = Committed(phase, step, (), (), call_id)
                self.buffer.append(self._redacted(entry) if self.redactors else entry)
                self.position += 1

    # ------------------------------------------------------------------ the invocation

    def load(self, entries: Sequence[Entry], decisions: Mapping[str, Decision]) -> None:
        """Fold recorded `entries` (`Cursor.replay`) and check `decisions` against them.

        Raises:
            JournalCorrupt: an entry does not fold (naming the run and the entry).
            UnknownRequest: a decision names a request the run never had.
        """
        self.replay(entries)
        self.written = len(entries)
        self._check_decisions(decisions)

    async def invoke(self, start: Started, decisions: Mapping[str, Decision], timeout: float | None) -> Outcome:
        """Run from the first uncommitted phase to RunEnd, as the attempt `start` claimed."""
        started = time.monotonic()
        if self.finished:  # not run again: no hook fires, nothing is journaled
            return self.outcome(self.ended, self.ended_error, started)  # type: ignore[arg-type]
        self.attempt = start.attempt
        reason, error = "error", None
        try:
            # only a timeout needs a scope of its own: nobody else can cancel one
            with (
                anyio.CancelScope(deadline=anyio.current_time() + timeout)
                if timeout is not None
                else _NO_SCOPE as scope
            ):
                self.commit(start)
                self._decide(decisions)
                if self.listening:
                    self.emit(ev.RunStarted, self.attempt > 1, self.attempt)
                await self.run_phase("run_start")
                wrapped = "agent_wrap_run" in self.wiring.implemented
                async with AsyncExitStack() if wrapped else _NO_WRAP as resources:
                    if wrapped:
                        for manager in self.wiring.wraps("agent_wrap_run", ctx=self.context("run_start")):
                            await resources.enter_async_context(_Resource(manager))
                    reason = await self.drive()
            if scope is not None and scope.cancelled_caught:
                reason = "cancelled"
                error = ErrorInfo(f"timed out after {timeout} s", type="TimeoutError")
        except (HookFailed, PluginError, _Failure, MissingComponent, PatchConflict, JournalAppendFailed) as exc:
            reason, error = "error", _error_info(exc)
        except StaleAttempt as exc:  # another attempt owns the run: end this one, write nothing, tell the caller
            await self.finish("error", _error_info(exc), started)
            raise
        except Exception as exc:  # a kernel or journal bug: still end the run properly
            self.wiring.log.exception("run %s failed inside the kernel", self.run_id)
            reason, error = "error", ErrorInfo(f"internal error: {type(exc).__name__}: {exc}", type=type(exc).__name__)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self.finish("cancelled", None, started)
            raise
        return await self.finish(reason, error, started)

    def _check_decisions(self, decisions: Mapping[str, Decision]) -> None:
        """Refuse, before anything is claimed or journaled, decisions for requests the run
        never had and approvals of calls of a tool the run was offered but this agent lacks
        (an approved call of a tool the model made up runs into the "Unknown tool" result)."""
        for request_id, decision in decisions.items():
            if request_id not in self.requests_seen:
                known = ", ".join(r.id for r in self.state.pending) or "none"
                raise UnknownRequest(f"run {self.run_id!r} has no approval request {request_id!r} (pending: {known})")
            if not isinstance(decision, (Approve, Deny)):
                raise TypeError(f"decision for {request_id!r} must be Approve(...) or Deny(...), got {decision!r}")
            if isinstance(decision, Approve):
                tool = self.approved_tool(request_id)
                if tool in self.offered and tool not in self.wiring.tools:
                    loaded = ", ".join(sorted(self.wiring.tools)) or "none"
                    raise MissingComponent(
                        f"run {self.run_id!r}: request {request_id!r} approves a call of tool {tool!r}, "
                        f"which no loaded plugin registers (tools here: {loaded}); resume where that tool is "
                        "loaded, or deny the request. Nothing was changed."
                    )

    def _decide(self, decisions: Mapping[str, Decision]) -> None:
        for request_id, decision in decisions.items():
            if request_id not in self.decided:  # a decision delivered twice is applied once
                self.commit(Decided(request_id, decision))

    async def finish(self, reason: str, error: ErrorInfo | None, started: float) -> Outcome:
        """RunEnd: exactly once per invocation, whatever happened before."""
        with anyio.CancelScope(shield=True):
            if self.tail and (reason not in FINISHED or "run_end" not in self.quiet) and not self.journal_failed:
                self._write_tail()
            try:  # the outcome so far is built only for a hook that receives it
                outcome = self.outcome(reason, error, started) if self.wiring.phases["run_end"] else None
                await self.run_phase("run_end", outcome)
            except (HookFailed, PluginError) as exc:
                if error is None:  # a cancelled run stays cancelled; others become errors
                    reason = "cancelled" if reason == "cancelled" else "error"
                    error = _error_info(exc)
            if not self.journal_failed:
                self.commit(Ended(reason, error))
                try:
                    await self.flush()
                except (JournalAppendFailed, StaleAttempt) as exc:
                    if error is None:
                        reason, error = "error", _error_info(exc)
            if self.listening:
                self.emit(ev.RunEnded, reason, self.state.output(), error.message if error else None)
        return self.outcome(reason, error, started)

    def outcome(self, reason: str, error: ErrorInfo | None, started: float) -> Outcome:
        if error is not None and self.redactors:  # as the journal holds it (its Ended entry is redacted)
            ended = Ended(reason, error)
            for redact in self.redactors:
                ended = redact(ended)
            error = ended.error
        state = self.state
        stats = Stats(
            self.steps, self.llm_calls, self.tool_calls, self.tool_errors, self.retries, time.monotonic() - started
        )
        return Outcome(
            reason,  # type: ignore[arg-type]
            state.output(),
            self.run_id,
            state.usage,
            stats,
            state,
            state.pending if reason == "suspended" else (),
            error,
            state.stop if reason == "stopped" or (state.stop is not None and state.stop.completed) else None,
        )

    async def drive(self) -> str:
        """Make the cursor's next move until the invocation ends; return the reason."""
        moves = self.moves
        while True:
            move = self.next_move()
            perform = moves.get(move)
            if perform is None:
                return move  # completed or stopped
            if await perform():
                return SUSPENDED

    @property
    def moves(self) -> dict[str, Callable[[], Awaitable[bool | None]]]:
        """What each move of `Cursor.next_move` does; a move returning True suspends the run."""
        return {
            STEP_START: self.step_start,
            BEFORE_INFERENCE: self.before_inference,
            INFER: self.infer,
            AFTER_INFERENCE: self.after_inference,
            STEP_END: self.step_end,
            BEFORE_TOOLS: self.befores,
            APPROVE: self.approve,
            RUN_TOOLS: self.run_tools,
            STEP_END_AFTER_TOOLS: self.step_end_after_tools,
        }

    # ------------------------------------------------------------------ step phases

    async def step_start(self) -> None:
        step = self.state.step + 1
        await self.run_phase("step_start", step=step)
        if self.listening:
            self.emit(ev.StepStarted, step)

    def _emit_step_end(self) -> None:
        if self.listening:
            self.emit(ev.StepEnded, self.state.step)

    async def step_end_after_tools(self) -> None:
        """StepEnd of a step whose tool calls ran: the run would go on, unless `Agent.max_steps` is reached.

        The kernel's Stop joins the phase's patches (source ``agent_kernel``), so it is
        journaled with them and a resume sees the same end.
        """
        if "step_end" in self.quiet:
            patch_list, sources = _NOTHING
        else:
            patch_list, sources = await self.call_phase(self.wiring.phases["step_end"], (self.context("step_end"),))
        limit = self.wiring.max_steps
        step = self.state.step
        if limit is not None and step >= limit and not any(isinstance(p, Stop) for p in patch_list):
            stop = Stop("limit.steps", f"{step} of max_steps={limit} steps are used (Agent(max_steps=...))")
            patch_list, sources = (*patch_list, stop), (*sources, "agent_kernel")
        self.close_phase("step_end", step, patch_list, sources)
        self._emit_step_end()

    def request(self, model: str | None = None) -> Request:
        state = self.state
        messages: Sequence[Message] = state.messages
        head: tuple[Message, ...] = tuple(Message("system", text) for text in state.context) if state.context else ()
        if state.window_start:
            lead = 0
            while lead < len(messages) and messages[lead].role == "system":
                lead += 1
            head = tuple(messages[:lead]) + head + ((Message("system", state.summary),) if state.summary else ())
            messages = state.messages.tail(max(state.window_start, lead))
        if head:
            messages = Chain(head, messages)
        return Request(
            model or state.model,
            messages,  # type: ignore[arg-type]
            self.wiring.visible_tools(state),
            state.tool_choice or "auto",
            self.wiring.settings,
        )

    async def before_inference(self) -> None:
        state, request = self.state, self.request()
        await self.run_phase("before_inference", request)
        self.preview = (state, request)  # still the request to send if no patch changed the state
        if self.listening:
            self.emit(ev.InferenceStarted, self.state.step, self.state.model)

    async def infer(self) -> None:
        """[LLM]: ask the executor, deciding on failures; journal the response."""
        state, preview = self.preview
        request = preview if preview is not None and state is self.state else self.request()
        wiring = self.wiring
        attempt = 0
        await self.flush()
        wrapped = "agent_wrap_inference" in wiring.implemented
        deltas = _Deltas(self)
        while True:
            executor, plugin = wiring.executor(request.model)
            try:
                if wrapped:
                    response = await self._wrapped(
                        "agent_wrap_inference",
                        partial(executor.infer, request, deltas),
                        ctx=self.context("before_inference"),
                        request=request,
                    )
                else:
                    response = await executor.infer(request, deltas)
                break
            except HookFailed:
                raise
            except Exception as exc:
                attempt += 1
                ctx = self.context("before_inference")
                decision = await self._after_failure(
                    "agent_on_inference_error", "inference", attempt, exc, ctx, request.model, request=request
                )
                if isinstance(decision, Fallback):
                    await self._retry("inference", attempt, 0.0, f"{type(exc).__name__}: {exc}", decision.model)
                    request = attrs.evolve(request, model=decision.model)
                elif not isinstance(decision, Retry):
                    message = f"inference failed: {type(exc).__name__}: {exc}"
                    raise _Failure(ErrorInfo(message, plugin, "infer", type(exc).__name__)) from exc
        if not isinstance(response, Response):
            raise _Failure(
                ErrorInfo(f"executor returned {type(response).__name__}, not a Response", plugin, "infer", "TypeError")
            )
        self.commit(Inferred(self.state.step, response))
        if not self._intent_follows(response):
            await self.flush()  # a paid response is durable as soon as it arrives, not at the next side effect

    def _intent_follows(self, response: Response) -> bool:
        """True when the next write is the intent of the first tool call the strategy
        starts, with no plugin code before it: the response then rides in that write (one
        durable write, not two; a crash in between is a crash before it was recorded).
        Every call's tool must be known: whichever call a sequential strategy starts
        first, it journals an intent, not an "Unknown tool" result."""
        calls = response.message.tool_calls
        if not (calls and self.wiring.straight_to_tools):
            return False
        tools = self.wiring.tools
        return all(call.name in tools for call in calls)

    async def _wrapped(self, hook: str, work: Callable[[], Awaitable[Any]], **arguments: Any) -> Any:
        """Await `work()` inside the context managers wrap `hook`'s implementations return (outermost first)."""
        async with AsyncExitStack() as stack:
            for manager in self.wiring.wraps(hook, **arguments):
                await stack.enter_async_context(manager)
            return await work()

    async def _after_failure(
        self, hook: str, what: str, attempt: int, exc: Exception, ctx: Context, model: str = "", **arguments: Any
    ) -> Any:
        """Ask decision `hook` about the `attempt`-th failure of `what` (the model call or a
        tool) and return its decision; a `Retry` is journaled and waited out here (at least
        as long as an `InferenceError`'s ``retry_after``)."""
        decision = self.wiring.decide(hook, ctx=ctx, error=exc, attempt=attempt, **arguments)
        if isinstance(decision, Retry):
            delay = decision.delay
            if isinstance(exc, InferenceError) and exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
            await self._retry(what, attempt, delay, f"{type(exc).__name__}: {exc}", model)
        return decision

    async def _retry(self, what: str, attempt: int, delay: float, error: str, model: str = "") -> None:
        self.commit(Retried(what, attempt, delay, error, model))
        await self.flush()
        if self.listening:
            self.emit(ev.RetryScheduled, what, attempt, delay, error)
        if delay > 0:
            await anyio.sleep(delay)

    async def after_inference(self) -> None:
        response = self.response
        assert response is not None
        await self.run_phase("after_inference", response)
        if self.listening:
            self.emit(ev.InferenceFinished, self.state.step, response.message, response.usage, response.stop_reason)

    # ------------------------------------------------------------------ tool phases

    async def step_end(self) -> None:
        """StepEnd of a step without tool calls (the answer), or of a stopping step."""
        await self.run_phase("step_end")
        self._emit_step_end()

    async def run_tools(self) -> None:
        """[TOOL] for the step's calls without a result, through the strategy, and
        AfterToolExecute for each call not done."""
        todo = [c for c in self.calls if c.id not in self.done]
        strategy = self.wiring.strategy
        if strategy is None:  # the kernel's default: one call after another, in call order
            for call in todo:
                await self._execute_then_after(call)
            return
        concurrent = self.concurrent = self.wiring.concurrent
        try:
            if concurrent:
                await strategy.run([c for c in todo if c.id not in self.results], self.execute)
            else:
                await strategy.run(todo, self._execute_then_after)
        except BaseExceptionGroup as group:
            raise _unwrap(group) from None
        finally:
            self.concurrent = False
        if concurrent:
            calls = [c for c in todo if c.id in self.results]
            await self.tool_phase_concurrently("after_tool_execute", calls, self._commit_after)

    async def call_tool_phase(
        self, phase: str, call: ToolCall, ctx: Context | None = None
    ) -> tuple[tuple[Patch, ...], tuple[str, ...]]:
        """Call a tool phase's hook for `call`: BeforeToolExecute with the call the model
        made, AfterToolExecute with the call as it ran and its result."""
        hook = self.wiring.phases[phase]
        if not hook:
            return _NOTHING
        args = (call,) if phase == "before_tool_execute" else (self._ran(call), self.results[call.id])
        return await self.call_phase(hook, (ctx or self.context(phase), *args))

    async def tool_phase_concurrently(
        self,
        phase: str,
        calls: Sequence[ToolCall],
        commit: Callable[[ToolCall, Sequence[Patch], Sequence[str]], None],
    ) -> None:
        """A tool phase of calls that run concurrently: every hook sees one snapshot, and
        their patches are merged in call order (`merge_concurrent`) before each call's commit."""
        ctx = self.context(phase)
        batches = [await self.call_tool_phase(phase, call, ctx) for call in calls]
        merged = merge_concurrent([b[0] for b in batches], [c.id for c in calls], [b[1] for b in batches])
        for call, patch_list, (_, sources) in zip(calls, merged, batches, strict=True):
            commit(call, patch_list, sources)

    async def befores(self) -> None:
        """BeforeToolExecute for the step's calls not decided yet: on one snapshot under a
        concurrent strategy, else one after another until a hook stops the run."""
        calls = [c for c in self.calls if c.id not in self.plans]
        if "before_tool_execute" in self.quiet:  # no plugin implements it: every call runs as asked
            for call in calls:
                self.close_phase("before_tool_execute", self.state.step, *_NOTHING, call.id)
            return
        if self.wiring.concurrent:
            await self.tool_phase_concurrently("before_tool_execute", calls, self._commit_before)
            return
        for call in calls:
            self._commit_before(call, *await self.call_tool_phase("before_tool_execute", call))
            if self.state.stop is not None:
                return

    def _commit_before(self, call: ToolCall, patch_list: Sequence[Patch], sources: Sequence[str]) -> None:
        self.close_phase("before_tool_execute", self.state.step, tuple(patch_list), tuple(sources), call.id)
        if self.listening and self.plans[call.id].action == "suspend":
            for request in self.state.pending:
                if request.call.id == call.id:
                    self.emit(ev.ApprovalRequested, request)

    async def approve(self) -> bool:
        """Ask the approvers about the pending requests; True (suspend) if any is left."""
        for request in self.state.pending:
            for registered in self.wiring.approvers:
                try:
                    decision = await registered.item(request, self.state)
                except Exception as exc:
                    raise HookFailed(registered.plugin, "approver", exc) from exc
                if decision is not None:
                    self._decide({request.id: decision})
                    break
        return bool(self.state.pending)

    async def _after(self, call: ToolCall) -> None:
        self._commit_after(call, *await self.call_tool_phase("after_tool_execute", call))

    def _commit_after(self, call: ToolCall, patch_list: Sequence[Patch], sources: Sequence[str]) -> None:
        # journaled even when quiet: only a call's ToolDone implies its AfterToolExecute
        self.commit(Committed("after_tool_execute", self.state.step, tuple(patch_list), tuple(sources), call.id))
        self._emit_finished(call)

    def _emit_finished(self, call: ToolCall) -> None:
        if self.listening:
            self.emit(ev.ToolCallFinished, self.state.step, call.id, call.name, self.results[call.id])

    def _ran(self, call: ToolCall) -> ToolCall:
        """The call with the arguments it ran with."""
        arguments = self.plans[call.id].arguments
        return call if arguments is call.arguments or arguments is None else ToolCall(call.id, call.name, arguments)

    async def _execute_then_after(self, call: ToolCall) -> None:
        if self.state.stop is not None:
            return
        await self.execute(call)
        if call.id in self.done:  # its ToolDone passed a quiet AfterToolExecute
            self._emit_finished(call)
        elif call.id in self.results:  # not when the tool suspended the run
            await self._after(call)

    async def execute(self, call: ToolCall) -> None:
        """[TOOL]: run one call unless it already has a result; journal intent and result."""
        if call.id in self.results:
            return
        wiring = self.wiring
        found = wiring.tools.get(call.name)
        if found is None:
            names = ", ".join(sorted(wiring.tools)) or "none"
            self.commit(
                ToolDone(
                    self.state.step, call.id, ToolResult(f"Unknown tool {call.name!r}. Available tools: {names}.", True)
                )
            )
            return
        spec, function = found
        waited_for = self.waiting.get(call.id)
        if call.id in self.intended and waited_for is None and not spec.idempotent:
            self.commit(ToolDone(self.state.step, call.id, ToolResult(UNKNOWN_OUTCOME, True)))
            return
        decisions = _NO_DECISIONS if waited_for is None else {rid: self.forwarded[rid] for rid in waited_for}
        arguments = self.plans[call.id].arguments
        self.commit(Intended(self.state.step, call.id, arguments))
        await self.flush()
        ran = self._ran(call)  # wrap and error hooks see the arguments it runs with
        if self.listening:
            self.emit(ev.ToolCallStarted, self.state.step, ran)
        result = await self._attempt_tool(ran, spec, function, arguments, decisions)
        if isinstance(result, ToolSuspended):
            self._suspend_call(call, result)
        elif self.redactors and len(result.content) >= OFF_LOOP_REDACTION:
            # a big result is redacted in a worker thread: the other runs of the loop go on
            done = await anyio.to_thread.run_sync(self._redacted, ToolDone(self.state.step, call.id, result))
            self.commit(done, redacted=True)
        else:
            self.commit(ToolDone(self.state.step, call.id, result))

    def _suspend_call(self, call: ToolCall, suspended: ToolSuspended) -> None:
        """Journal a tool's ToolSuspended; a reused request id is the tool's error instead."""
        ids = [r.id for r in suspended.requests]
        reused = sorted({i for i in ids if i in self.requests_seen or ids.count(i) > 1})
        if reused:
            message = f"Tool {call.name!r} suspended the run with request ids that are not new: {', '.join(reused)}."
            self.commit(ToolDone(self.state.step, call.id, ToolResult(message, True)))
            return
        self.commit(Waiting(self.state.step, call.id, suspended.requests))
        if self.listening:
            for request in suspended.requests:
                self.emit(ev.ApprovalRequested, request)

    async def _attempt_tool(
        self,
        call: ToolCall,
        spec: ToolSpec,
        function: Any,
        arguments: Mapping[str, Any],
        decisions: Mapping[str, Decision],
    ) -> ToolResult | ToolSuspended:
        wrapped = "agent_wrap_tool_call" in self.wiring.implemented
        attempt = 0
        while True:
            tool_ctx = ToolContext(self.run_id, self.state.step, call.id, attempt + 1, self.state, decisions)
            try:
                if wrapped:
                    result = await self._wrapped(
                        "agent_wrap_tool_call",
                        partial(function, arguments, tool_ctx),
                        ctx=self.context("before_tool_execute"),
                        call=call,
                    )
                else:
                    result = await function(arguments, tool_ctx)
                if not isinstance(result, ToolResult):
                    return ToolResult(f"Tool {call.name!r} returned {type(result).__name__}, not a ToolResult.", True)
                return result
            except ToolInputError as exc:
                return ToolResult(f"Invalid arguments for {call.name!r}: {exc}", True)
            except ToolSuspended as exc:
                return exc
            except HookFailed:
                raise
            except Exception as exc:
                attempt += 1
                ctx = self.context("before_tool_execute")
                decision = await self._after_failure(
                    "agent_on_tool_error", f"tool:{call.name}", attempt, exc, ctx, call=call
                )
                if not isinstance(decision, Retry):
                    return ToolResult(f"Tool {call.name!r} failed: {type(exc).__name__}: {exc}", True)


def _error_info(exc: Exception) -> ErrorInfo:
    """What the outcome says about an error that ended the run."""
    if isinstance(exc, HookFailed):
        name = type(exc.error).__name__
        return ErrorInfo(f"{name}: {exc.error}", exc.plugin, exc.hook, name)
    if isinstance(exc, PluginError):
        return ErrorInfo(str(exc), exc.plugin, exc.hook, type(exc).__name__)
    if isinstance(exc, _Failure):
        return exc.info
    return ErrorInfo(str(exc), type=type(exc).__name__)


def _first_hook_failure(group: BaseException) -> HookFailed | None:
    if isinstance(group, HookFailed):
        return group
    for exc in getattr(group, "exceptions", ()):
        found = _first_hook_failure(exc)
        if found is not None:
            return found
    return None


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error a strategy's task group carried that the run knows how to end with."""
    stale, _ = group.split(StaleAttempt)  # fencing outranks every other failure
    known = (HookFailed, _Failure, PluginError, PatchConflict, MissingComponent, JournalAppendFailed)
    match, _ = group.split(known) if stale is None else (stale, None)
    if match is None:
        return group
    found: BaseException = match
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    return found
