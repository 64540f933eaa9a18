"""`Cursor`: where a run is, and what it does next. No I/O, no plugin calls.

Everything that changes a run is a journal entry, or a quiet phase (one no plugin
implements, passed without a patch: `pass_phase`) that the next entry implies.
`Cursor.fold_entry` folds one entry into the state and the position (phase, the step's
response, calls, plans, results); a live run folds each entry as it commits it, and
a resume replays the loaded entries through the very same `fold_entry`, passing the
quiet phases each one implies first (`catch_up`). So a resumed run is, by
construction, where the crashed one was. `Cursor.next_move` is the decision: a pure
function of the cursor naming the next thing the runner must do.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._fold import CallPlan, fold, reminders, resolve_call
from ._log import Log
from ._state import Approve, Decision, Message, Response, RunState, ToolCall, ToolResult, replace_state
from .errors import JournalCorrupt
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
from .patches import Patch, Suspend

# The moves `Cursor.next_move` returns: what the runner does next.
COMPLETED = "completed"  # end the invocation: the run is complete
STOPPED = "stopped"  # end the invocation: a Stop patch ended the run
SUSPENDED = "suspended"  # end the invocation: approvals are pending
STEP_START = "step_start"
BEFORE_INFERENCE = "before_inference"
INFER = "infer"  # ask the model (no response is recorded for this step)
AFTER_INFERENCE = "after_inference"
STEP_END = "step_end"  # StepEnd of a step without tool calls, or of a stopping one
BEFORE_TOOLS = "before_tools"  # BeforeToolExecute for the calls not yet decided
APPROVE = "approve"  # ask the approvers about pending requests
RUN_TOOLS = "run_tools"  # run the calls without a result, AfterToolExecute for those not done
STEP_END_AFTER_TOOLS = "step_end_after_tools"


# Where each kind of entry is written: the moves `Cursor.catch_up` stops at.
_STEP_END = frozenset({STEP_END, STEP_END_AFTER_TOOLS})
_WRITTEN_AT: dict[object, frozenset[str]] = {
    Inferred: frozenset({INFER}),
    Intended: frozenset({RUN_TOOLS}),
    ToolDone: frozenset({RUN_TOOLS}),
    Waiting: frozenset({RUN_TOOLS}),
    "inference": frozenset({INFER}),  # Retried
    "tool": frozenset({RUN_TOOLS}),  # Retried
    "end": frozenset(),  # Ended of a finished run: every quiet phase left is passed
    "step_start": frozenset({STEP_START}),
    "before_inference": frozenset({BEFORE_INFERENCE}),
    "after_inference": frozenset({AFTER_INFERENCE}),
    "before_tool_execute": frozenset({BEFORE_TOOLS}),
    "after_tool_execute": frozenset({RUN_TOOLS}),
    "step_end": _STEP_END,
}
# The phase each move passes, for the moves a quiet phase may be passed in.
_PASSES = {
    STEP_START: "step_start",
    BEFORE_INFERENCE: "before_inference",
    AFTER_INFERENCE: "after_inference",
    BEFORE_TOOLS: "before_tool_execute",
    STEP_END: "step_end",
    STEP_END_AFTER_TOOLS: "step_end",
}


class Cursor:
    """A run's state and position, changed only by `fold_entry` and `pass_phase`."""

    def __init__(self, run_id: str, model: str) -> None:
        self.run_id = run_id
        self.state: RunState = RunState(run_id, model, Log())
        self.position = 0  # entries applied
        self.phase: str | None = None  # last committed step-level phase
        self.response: Response | None = None
        self.calls: tuple[ToolCall, ...] = ()
        self.plans: dict[str, CallPlan] = {}
        self.results: dict[str, ToolResult] = {}
        self.intended: set[str] = set()
        self.done: set[str] = set()
        self.waiting: dict[str, tuple[str, ...]] = {}  # call id -> its ToolSuspended requests
        self.forwarded: dict[str, Decision] = {}  # decisions for those requests, by request id
        self.requests_seen: set[str] = set()
        self.offered: set[str] = set()  # tools some invocation of the run had loaded
        self.decided: set[str] = set()
        self.quiet: frozenset[str] = frozenset()  # the invocation's phases journaled only with patches
        self.ended: str | None = None
        self.ended_error: ErrorInfo | None = None
        self.steps = self.llm_calls = self.tool_calls = self.tool_errors = self.retries = 0

    @property
    def finished(self) -> bool:
        """The run completed or stopped: resuming it returns its recorded outcome."""
        return self.ended in FINISHED

    # ------------------------------------------------------------------ the decision

    def next_move(self) -> str:
        """What the runner does next (one of this module's moves)."""
        phase = self.phase
        stop = self.state.stop
        if phase is None or phase == "step_end":
            if stop is not None:
                return COMPLETED if stop.completed else STOPPED
            if phase == "step_end" and not self.calls and self.answered():
                return COMPLETED
            return STEP_START
        if stop is not None:
            return STEP_END
        if phase == "step_start":
            return BEFORE_INFERENCE
        if phase == "before_inference":
            return INFER if self.response is None else AFTER_INFERENCE
        calls = self.calls
        if not calls:
            return STEP_END
        plans = self.plans
        for call in calls:
            if call.id not in plans:
                return BEFORE_TOOLS
        if self.state.pending:
            return APPROVE
        done = self.done
        for call in calls:
            if call.id not in done:
                return RUN_TOOLS
        return STEP_END_AFTER_TOOLS

    def answered(self) -> bool:
        """True when the last message is the step's final answer (nothing was added after it)."""
        messages = self.state.messages
        return bool(messages) and self.response is not None and messages[-1] is self.response.message

    # ------------------------------------------------------------------ folding

    def replay(self, entries: Sequence[Entry]) -> None:
        """Fold recorded `entries`.

        Raises:
            JournalCorrupt: an entry does not fold (naming the run and the entry).
        """
        for index, entry in enumerate(entries):
            try:
                self.apply(entry)
            except Exception as exc:
                raise JournalCorrupt(
                    f"run {self.run_id!r}: journal entry {index} ({type(entry).__name__}) does not fold onto "
                    f"the entries before it: {type(exc).__name__}: {exc}"
                ) from exc

    def apply(self, entry: Entry) -> None:
        """Fold one recorded entry: first the quiet phases the run passed before it wrote
        `entry` (`catch_up`), then the entry itself (`fold_entry`)."""
        if self.quiet:
            self.catch_up(entry)
        self.fold_entry(entry)

    def fold_entry(self, entry: Entry) -> None:
        """Fold one journal entry into the state and the cursor: what a live run does with
        each entry it commits (it passes its quiet phases as it goes) and a replay with
        each entry it reads, once caught up."""
        self.position += 1
        kind = type(entry)
        if kind is Committed:
            self._fold_phase(entry.phase, entry.step, entry.patches, entry.sources, entry.call_id)  # type: ignore[attr-defined]
        elif kind is Inferred:
            self.response = entry.response  # type: ignore[attr-defined]
            self.llm_calls += 1
        elif kind is Intended:
            call_id = entry.call_id  # type: ignore[attr-defined]
            self.intended.add(call_id)
            if self.waiting.pop(call_id, None) is None:  # a call made again after ToolSuspended counts once
                self.tool_calls += 1
        elif kind is ToolDone:
            self.results[entry.call_id] = entry.result  # type: ignore[attr-defined]
            self.tool_errors += entry.result.is_error  # type: ignore[attr-defined]
            if "after_tool_execute" in self.quiet:  # a call run in turn reaches AfterToolExecute at once
                self.pass_phase("after_tool_execute", entry.step, entry.call_id)  # type: ignore[attr-defined]
        elif kind is Decided:
            self._apply_decision(entry)  # type: ignore[arg-type]
        elif kind is Waiting:
            self._apply_waiting(entry)  # type: ignore[arg-type]
        elif kind is Retried:
            self.retries += 1
        elif kind is Started:
            self._apply_start(entry)  # type: ignore[arg-type]
        elif kind is Ended:
            self.ended = entry.reason  # type: ignore[attr-defined]
            self.ended_error = entry.error  # type: ignore[attr-defined]
            self.state = replace_state(self.state, status=entry.reason)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ quiet phases

    def pass_phase(self, phase: str, step: int, call_id: str | None = None) -> None:
        """Fold a phase that carried no patch and is not journaled (it is in `quiet`)."""
        self._fold_phase(phase, step, (), (), call_id)

    def catch_up(self, entry: Entry) -> None:
        """Pass the quiet phases the run passed before it wrote `entry`.

        An invocation omits the entries of its `quiet` phases (those no plugin
        implements; `Started.quiet`) unless they carry a patch; each is implied by the
        next entry written, which names where the run had got to. So before an entry,
        the cursor passes quiet phases until it reaches the move that writes such an
        entry (`_WRITTEN_AT`). A finished run's `Ended` implies its last `StepEnd`; an
        `AfterToolExecute` follows its call's `ToolDone` at once (`apply`).
        """
        kind = type(entry)
        if kind is Committed:
            targets = _WRITTEN_AT.get(entry.phase)  # type: ignore[attr-defined]
        elif kind is Retried:
            targets = _WRITTEN_AT["inference" if entry.what == "inference" else "tool"]  # type: ignore[attr-defined]
        elif kind is Ended:
            targets = _WRITTEN_AT["end"] if entry.reason in FINISHED else None  # type: ignore[attr-defined]
        else:
            targets = _WRITTEN_AT.get(kind)
        if targets is None:
            return
        quiet = self.quiet
        while True:
            move = self.next_move()
            if move in targets:
                return
            phase = _PASSES.get(move)
            if phase not in quiet:
                return
            step = self.state.step
            if move == STEP_START:
                self.pass_phase(phase, step + 1)
            elif move == BEFORE_TOOLS:
                for call in self.calls:
                    if call.id not in self.plans:
                        self.pass_phase(phase, step, call.id)
            else:
                self.pass_phase(phase, step)

    def _apply_start(self, entry: Started) -> None:
        self.quiet = frozenset(entry.quiet)
        if entry.tools:
            self.offered.update(entry.tools)
        if entry.input is not None:  # the run's first invocation
            messages: list[Message] = []
            if entry.instructions:
                messages.append(Message("system", entry.instructions))
            messages.append(Message("user", entry.input))
            self.state = RunState(self.run_id, entry.model, Log(messages))
        else:
            self.state = replace_state(self.state, status="running")

    def _fold_phase(
        self, phase: str, step: int, patches: tuple[Patch, ...], sources: tuple[str, ...], call_id: str | None
    ) -> None:
        state = self.state
        if phase == "step_start":
            self.steps += 1
            self.response, self.calls = None, ()
            self.plans, self.results, self.intended, self.done = {}, {}, set(), set()
            if self.waiting:
                self.waiting, self.forwarded = {}, {}
            state = replace_state(state, step=step)
        elif phase == "after_inference":
            response = self.response
            assert response is not None, "after_inference committed without a recorded response"
            self.calls = response.message.tool_calls
            state = replace_state(
                state,
                messages=state.messages.append(response.message),
                usage=state.usage + response.usage,
                context=(),
                tool_choice=None,
            )
        elif phase == "before_tool_execute":
            call = self.call(call_id)
            plan = resolve_call(call, patches)
            self.plans[call.id] = plan
            if plan.action in ("block", "provide"):
                self.results[call.id] = ToolResult(plan.content, plan.is_error)
            elif plan.action == "suspend":
                self.requests_seen.add(f"{self.run_id}/{step}/{call.id}")
            if plan.action != "suspend" and any(isinstance(p, Suspend) for p in patches):
                patches = tuple(p for p in patches if not isinstance(p, Suspend))  # outvoted
            self.state = fold(state, patches, call=call, sources=sources) if patches else state
            self.phase = phase
            return
        elif phase == "after_tool_execute":
            call_id = call_id or ""
            result = self.results[call_id]
            content = result.content
            if patches:
                for text in reminders(patches):
                    content += f"\n\n<system-reminder>{text}</system-reminder>"
            message = Message("tool", content, tool_call_id=call_id, is_error=result.is_error)
            state = replace_state(state, messages=state.messages.append(message))
            self.done.add(call_id)
        self.state = fold(state, patches) if patches else state
        if phase not in ("run_start", "run_end"):
            self.phase = phase

    def _apply_waiting(self, entry: Waiting) -> None:
        ids = tuple(r.id for r in entry.requests)
        self.waiting[entry.call_id] = ids
        self.requests_seen.update(ids)
        # concurrent calls suspend in completion order; their requests wait in call order
        position = {call.id: i for i, call in enumerate(self.calls)}
        rank = {rid: position[call_id] for call_id, rids in self.waiting.items() for rid in rids}
        pending = sorted(self.state.pending + entry.requests, key=lambda r: rank.get(r.id, -1))
        self.state = replace_state(self.state, pending=tuple(pending))

    def _apply_decision(self, entry: Decided) -> None:
        state = self.state
        request = next(r for r in state.pending if r.id == entry.request_id)
        self.decided.add(request.id)
        decision = entry.decision
        if any(request.id in ids for ids in self.waiting.values()):
            self.forwarded[request.id] = decision  # for the tool that suspended, when it is called again
        elif isinstance(decision, Approve):
            arguments = decision.arguments if decision.arguments is not None else self.plans[request.call.id].arguments
            self.plans[request.call.id] = CallPlan("run", arguments)
        else:
            self.plans[request.call.id] = CallPlan("block", None, f"Denied: {decision.reason}", True)
            self.results[request.call.id] = ToolResult(f"Denied: {decision.reason}", True)
        self.state = replace_state(state, pending=tuple(r for r in state.pending if r.id != request.id))

    def call(self, call_id: str | None) -> ToolCall:
        """The step's tool call `call_id`."""
        for call in self.calls:
            if call.id == call_id:
                return call
        raise KeyError(f"no tool call {call_id!r} in step {self.state.step}")

    def approved_tool(self, request_id: str) -> str | None:
        """The tool an approval of pending `request_id` lets run: the call that suspended
        with it (a tool's own request), else the call the request is about."""
        for call_id, requests in self.waiting.items():
            if request_id in requests:
                return self.call(call_id).name
        request = next((r for r in self.state.pending if r.id == request_id), None)
        return None if request is None else request.call.name


class _Expanding(Cursor):
    """A cursor that writes out the entries it folds, with the quiet phases it passes."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id, "")
        self.out: list[Entry] = []
        self.held: Entry | None = None  # the entry being folded, until it is written out
        self.opening = False  # an invocation started and its RunStart is not written out yet

    def apply(self, entry: Entry) -> None:
        self.held = entry
        super().apply(entry)
        if self.held is not None:
            self.out.append(entry)
        if type(entry) is Started:
            self.opening = True

    def catch_up(self, entry: Entry) -> None:
        # RunStart follows the invocation's decisions; RunEnd comes last, before Ended
        kind = type(entry)
        if self.opening and kind is not Decided:
            self.opening = False
            if "run_start" in self.quiet and not (kind is Committed and entry.phase == "run_start"):  # type: ignore[attr-defined]
                self.out.append(Committed("run_start", self.state.step))
        super().catch_up(entry)
        if kind is Ended and "run_end" in self.quiet:
            self.out.append(Committed("run_end", self.state.step))

    def pass_phase(self, phase: str, step: int, call_id: str | None = None) -> None:
        if type(self.held) is ToolDone and phase == "after_tool_execute":  # passed after its ToolDone
            self.out.append(self.held)
            self.held = None
        self.out.append(Committed(phase, step, (), (), call_id))
        super().pass_phase(phase, step, call_id)


def expand(run_id: str, entries: Sequence[Entry]) -> list[Entry]:
    """`entries` with a `Committed` entry (no patches) for each phase passed quietly
    (`Started.quiet`), where the run passed it: every phase the run went through.

    Raises:
        JournalCorrupt: an entry does not fold onto the entries before it.
    """
    cursor = _Expanding(run_id)
    cursor.replay(entries)
    return cursor.out
