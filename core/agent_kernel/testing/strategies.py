"""Hypothesis strategies for agent runs: scripts, plugin behaviours and faults.

They compose: `scripts` gives what the model says, `plugin_behaviours` gives
plugins that do random (legal or not) things at random phases, `faults` gives what
goes wrong around them. `agent_kernel.testing.grammar.exercise` runs one drawn
combination and `check_plugin_phase_grammar` checks the kernel's guarantees over
many of them::

    from hypothesis import given
    from agent_kernel.testing import strategies as aks

    @given(aks.scripts(), aks.plugin_behaviours(), aks.faults())
    def test_something(script, plugins, faults): ...

All values drawn are plain frozen data or fresh plugin objects, so a failing
example prints readably and shrinks well.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from .. import patches as p
from .._state import Message
from ..hookspecs import PHASES
from ._behaviours import (
    KEY_COUNT,
    KEY_LAST,
    STATE_KEYS,
    TOOL_NAMES,
    UNKNOWN_TOOL,
    BehaviourError,
    BehaviourPlugin,
    Faults,
    PhaseBehaviour,
    ToolFault,
)
from ._scripted import Call, text, tool_call

__all__ = [
    "KEY_COUNT",
    "KEY_LAST",
    "STATE_KEYS",
    "TOOL_NAMES",
    "UNKNOWN_TOOL",
    "BehaviourError",
    "BehaviourPlugin",
    "Faults",
    "PhaseBehaviour",
    "ToolFault",
    "faults",
    "illegal_results",
    "legal_patches",
    "phase_behaviours",
    "plugin_behaviours",
    "scripts",
    "tool_arguments",
    "tool_calls",
    "turns",
]

_words = st.text(alphabet="abcdefghij xyz", min_size=1, max_size=12)


# ----------------------------------------------------------------------------- scripts


def tool_arguments() -> st.SearchStrategy[dict[str, Any]]:
    """Small JSON objects: a few of the keys ``a``, ``b``, ``text``."""
    value = st.one_of(st.integers(-9, 9), _words)
    return st.dictionaries(st.sampled_from(("a", "b", "text")), value, max_size=3)


def tool_calls(tools: Sequence[str] = TOOL_NAMES, *, unknown: bool = True) -> st.SearchStrategy[Call]:
    """One scripted tool call to one of `tools` (or, if `unknown`, sometimes `UNKNOWN_TOOL`)."""
    names = st.sampled_from(tuple(tools))
    if unknown:
        names = st.one_of(names, st.just(UNKNOWN_TOOL))
    return st.builds(lambda name, args: tool_call(name, **args), names, tool_arguments())


def turns(tools: Sequence[str] = TOOL_NAMES, *, max_calls: int = 3, unknown: bool = True) -> st.SearchStrategy[Any]:
    """One tool-call turn: a single call, or a list of 1..`max_calls` calls."""
    call = tool_calls(tools, unknown=unknown)
    return st.one_of(call, st.lists(call, min_size=1, max_size=max_calls))


def scripts(
    tools: Sequence[str] = TOOL_NAMES,
    *,
    max_turns: int = 4,
    max_calls: int = 3,
    unknown: bool = True,
    mid_text: bool = False,
) -> st.SearchStrategy[list[Any]]:
    """Scripts for `ScriptedModel`: up to ``max_turns - 1`` tool-call turns, then a text turn.

    Args:
        tools: the tool names calls go to.
        max_turns: the most turns in a script (at least 1: the final text).
        max_calls: the most calls in one turn.
        unknown: sometimes call a tool nobody registered.
        mid_text: also put text turns before the end (a plugin that appends
            messages after inference makes the model speak again).
    """
    if max_turns < 1:
        raise ValueError("max_turns must be at least 1")
    turn = turns(tools, max_calls=max_calls, unknown=unknown)
    if mid_text:
        turn = st.one_of(turn, st.builds(text, _words))
    return st.builds(lambda body, last: [*body, text(last)], st.lists(turn, max_size=max_turns - 1), _words)


# ----------------------------------------------------------------------------- patches


def _messages() -> st.SearchStrategy[list[Message]]:
    return st.lists(st.builds(Message, st.just("user"), _words), min_size=1, max_size=2)


def _names(tools: Sequence[str]) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(tuple(tools)), max_size=len(tools))


def _builders(tools: Sequence[str]) -> dict[str, st.SearchStrategy[p.Patch]]:
    """A strategy for every patch type this kit knows, by class name."""
    keys = st.sampled_from(STATE_KEYS)
    builders: dict[str, st.SearchStrategy[Any]] = {
        "AppendMessages": st.builds(lambda m: p.AppendMessages(m), _messages()),
        "InjectContext": st.builds(lambda t: p.InjectContext(t), _words),
        "ToolChoice": st.builds(lambda c: p.ToolChoice(c), st.sampled_from(("auto", "none", "required", *tools))),
        "SetData": st.builds(lambda k, v: p.SetData(k, v), keys, st.integers(-5, 5)),
        "IncrementData": st.builds(lambda k, by: p.IncrementData(k, by), keys, st.integers(1, 3)),
        "ExcludeTools": st.builds(lambda n: p.ExcludeTools(n), _names(tools)),
        "OnlyTools": st.builds(lambda n: p.OnlyTools(n), _names(tools)),
        "Stop": st.builds(lambda c, d: p.Stop(c, d), st.sampled_from(("limit", "done", "policy")), _words),
        "Finish": st.builds(lambda d: p.Finish(d), _words),
        "SetModel": st.just("scripted").map(lambda m: p.SetModel(m)),
        "SetWindow": st.builds(lambda s: p.SetWindow(0, s), st.one_of(st.just(""), _words)),
        "ReplaceMessage": st.builds(
            lambda t: p.ReplaceMessage(0, Message("user", t)),
            _words,
        ),
        "Block": st.builds(lambda r: p.Block(r), _words),
        "Suspend": st.builds(lambda r: p.Suspend(r), _words),
        "ProvideResult": st.builds(lambda c, e: p.ProvideResult(c, e), _words, st.booleans()),
        "RewriteArguments": st.builds(lambda a: p.RewriteArguments(a), tool_arguments()),
        "Remind": st.builds(lambda t: p.Remind(t), _words),
    }
    out: dict[str, st.SearchStrategy[p.Patch]] = {}
    for name, strategy in builders.items():
        if isinstance(getattr(p, name, None), type):
            out[name] = strategy
    return out


def legal_patches(
    phase: str,
    *,
    tools: Sequence[str] = TOOL_NAMES,
    stop: bool = True,
    suspend: bool = True,
    append: bool = True,
    max_size: int = 3,
) -> st.SearchStrategy[list[p.Patch]]:
    """Lists of patches that `phase` accepts (per `agent_kernel.patches.ALLOWED`).

    Args:
        phase: a phase name without the ``agent_`` prefix.
        tools: tool names for ExcludeTools / OnlyTools / ToolChoice.
        stop: include `Stop` and `Finish` (they end the run early).
        suspend: include `Suspend` (the run suspends until a decision).
        append: include `AppendMessages` (adds steps: the model speaks again).
        max_size: the longest list.
    """
    allowed = p.ALLOWED[phase]
    off = {"Stop": stop, "Finish": stop, "Suspend": suspend, "AppendMessages": append}
    skip = {name for name, on in off.items() if not on}
    options = [s for name, s in _builders(tools).items() if getattr(p, name) in allowed and name not in skip]
    if not options:
        return st.just([])
    return st.lists(st.one_of(options), max_size=max_size)


def illegal_results(phase: str, *, tools: Sequence[str] = TOOL_NAMES) -> st.SearchStrategy[Any]:
    """Results `phase` must refuse: a list holding an illegal patch or a non-patch."""
    allowed = p.ALLOWED[phase]
    illegal = [s for name, s in _builders(tools).items() if getattr(p, name) not in allowed]
    bad = st.one_of(*illegal, st.just("not a patch"), st.just(42)) if illegal else st.just("not a patch")
    return st.builds(
        lambda good, b, at: [*good[:at], b, *good[at:]], legal_patches(phase, tools=tools), bad, st.integers(0, 3)
    )


_BAD_SHAPES = st.sampled_from([p.Stop("bare", "a patch, not a list"), {"not": "a list"}, "a string", 3])


# ----------------------------------------------------------------------------- behaviours


def phase_behaviours(
    phase: str,
    *,
    tools: Sequence[str] = TOOL_NAMES,
    illegal: bool = True,
    raises: bool = True,
    stop: bool = True,
    suspend: bool = True,
    append: bool = True,
) -> st.SearchStrategy[PhaseBehaviour]:
    """One `PhaseBehaviour` for `phase`; mostly legal patches, sometimes misbehaving."""
    actions = ["patches", "patches", "patches", "none"]
    if illegal:
        actions += ["illegal", "bad_shape"]
    if raises:
        actions.append("raise")
    legal = legal_patches(phase, tools=tools, stop=stop, suspend=suspend, append=append)
    when = st.one_of(st.none(), st.integers(0, 3))

    def build(action: str) -> st.SearchStrategy[PhaseBehaviour]:
        result: st.SearchStrategy[Any] = st.none()
        if action == "patches":
            result = legal
        elif action == "illegal":
            result = illegal_results(phase, tools=tools)
        elif action == "bad_shape":
            result = _BAD_SHAPES
        return st.builds(PhaseBehaviour, st.just(phase), st.just(action), result, st.booleans(), when)

    return st.sampled_from(actions).flatmap(build)


def plugin_behaviours(
    phases: Sequence[str] = PHASES,
    *,
    max_plugins: int = 3,
    tools: Sequence[str] = TOOL_NAMES,
    illegal: bool = True,
    raises: bool = True,
    stop: bool = True,
    suspend: bool = True,
    append: bool = True,
) -> st.SearchStrategy[list[BehaviourPlugin]]:
    """Lists of 0..`max_plugins` fresh plugins, each implementing a random subset of `phases`.

    Every hook returns random legal patches, or (if enabled) illegal patches, a
    wrong return shape, or raises; sync or async; on every call or on one.

    Args:
        phases: the phases hooks may be generated for.
        max_plugins: the most plugins in one list.
        tools: tool names the patches may name.
        illegal: allow illegal patches and wrong return shapes.
        raises: allow hooks that raise `BehaviourError`.
        stop: allow `Stop` patches.
        suspend: allow `Suspend` patches.
        append: allow `AppendMessages` patches.
    """
    options = {"tools": tools, "illegal": illegal, "raises": raises, "stop": stop, "suspend": suspend, "append": append}

    def one(index: int) -> st.SearchStrategy[BehaviourPlugin]:
        chosen = st.lists(st.sampled_from(tuple(phases)), min_size=1, max_size=len(phases), unique=True)
        return chosen.flatmap(
            lambda names: st.tuples(*(phase_behaviours(n, **options) for n in names)).map(  # type: ignore[arg-type]
                lambda bs: BehaviourPlugin.make(f"behaviour-{index}", bs)
            )
        )

    return st.integers(0, max_plugins).flatmap(lambda n: st.tuples(*(one(i) for i in range(n))).map(list))


# ----------------------------------------------------------------------------- faults


def faults(
    *,
    max_turns: int = 4,
    inference: bool = True,
    tools: bool = True,
    timeouts: bool = True,
    cancellation: bool = True,
    retries: bool = True,
    suspends: bool = False,
) -> st.SearchStrategy[Faults]:
    """Random `Faults`; each family can be switched off.

    Args:
        max_turns: inference faults go before turns ``0 .. max_turns - 1``.
        inference: scripted inference failures.
        tools: tool exceptions and tool sleeps.
        timeouts: a ``timeout=`` on the first invocation (tools sleep up to 3 s).
        cancellation: cancellation from outside at a random phase hook call.
        retries: decision plugins that retry failed inferences / tools.
        suspends: tools that suspend the run for a decision (`ToolSuspended`); off by
            default, since such a call is (rightly) called again after its decision.
    """
    none: st.SearchStrategy[Any] = st.none()
    return st.builds(
        Faults,
        inference=st.lists(st.tuples(st.integers(0, max_turns - 1), st.integers(1, 2), st.booleans()), max_size=2).map(
            tuple
        )
        if inference
        else st.just(()),
        retry_inference=st.booleans() if retries else st.just(False),
        tool_errors=st.frozensets(st.integers(0, 6), max_size=3) if tools else st.just(frozenset()),
        retry_tools=st.booleans() if retries else st.just(False),
        tool_suspends=st.frozensets(st.integers(0, 6), max_size=3) if suspends else st.just(frozenset()),
        tool_delays=st.lists(st.sampled_from((0.0, 0.5, 3.0)), max_size=3).map(tuple) if tools else st.just(()),
        timeout=st.one_of(none, st.sampled_from((0.25, 1.0, 4.0))) if timeouts else none,
        cancel_at=st.one_of(none, st.integers(0, 25)) if cancellation else none,
    )
