"""`Wiring`: what an agent's plugins registered, resolved once per `Agent`.

The runner depends on this value only: the phase hooks, tools, executors, strategy,
journal, approvers, redactors and codec, plus a typed facade for the decision and
wrap hooks. `Agent` builds it and is the public face.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pluggy
from attrs import field, frozen

from ._plugins import HookFailed, PhaseHook, blame_caller
from ._registry import (
    ModelExecutor,
    ModelRegistrar,
    Registered,
    RuntimeRegistrar,
    ToolFunction,
    ToolRegistrar,
    ToolStrategy,
    register,
)
from ._serde import JsonCodec, make_converter
from ._state import RunState, StateKey, ToolSpec
from .errors import MissingComponent
from .hookspecs import PHASES
from .journal import Journal, MemoryJournal

if TYPE_CHECKING:
    from cattrs import Converter

_log = logging.getLogger("agent_kernel")

_INSTALL_HINT = {
    "openai": "agent-plugin-openai",
    "anthropic": "agent-plugin-anthropic",
    "llamacpp": "agent-plugin-llamacpp",
    "scripted": "agent-kernel's testing kit (add agent_kernel.testing.ScriptedModel([...]) to plugins)",
}


@frozen
class Wiring:
    """The resolved plugin set of one agent, and its settings for runs.

    Frozen: nothing here changes after the agent is built, except caches that only
    remember what they computed (executors by model string, the visible tools, what
    isinstance accepts for each state key).
    """

    pm: pluggy.PluginManager
    model: str | None
    instructions: str | None
    settings: Mapping[str, Any]
    max_steps: int | None
    phases: Mapping[str, PhaseHook]
    tools: Mapping[str, tuple[ToolSpec, ToolFunction]]
    tool_specs: tuple[ToolSpec, ...]
    specs_by_name: Mapping[str, ToolSpec]
    tool_names: tuple[str, ...]  # sorted: what `Started.tools` records
    models: ModelRegistrar
    strategy: ToolStrategy | None
    concurrent: bool  # the strategy runs a step's calls concurrently
    journal: Journal
    state_keys: Mapping[str, StateKey[Any]]
    approvers: tuple[Registered, ...]
    redactors: tuple[Callable[[Any], Any], ...]
    codec: JsonCodec
    observers: tuple[tuple[Callable[..., object], str], ...]
    implemented: frozenset[str]  # decision and wrap hooks nobody implements are skipped
    # No plugin code runs between a model response and its first tool call's intent:
    # no AfterInference or BeforeToolExecute hook, no observer, a sequential strategy.
    straight_to_tools: bool
    # The phases no plugin implements, journaled only when they carry a patch (the
    # kernel's Stop at max_steps): what `Started.quiet` records. AfterToolExecute is
    # one only under a sequential strategy, where it follows its call's ToolDone at once.
    quiet: tuple[str, ...]
    log: logging.Logger = _log
    state_types: dict[str, tuple[type, ...] | None] = field(factory=dict)  # `patches.Checking.types`
    _executors: dict[str, tuple[ModelExecutor, str]] = field(factory=dict)
    _tool_view: list[Any] = field(factory=lambda: [None, None])  # [key, specs]

    # ------------------------------------------------------------------ models

    def executor(self, model: str) -> tuple[ModelExecutor, str]:
        """The executor serving `model` and its plugin (created once per model string)."""
        found = self._executors.get(model)
        if found is not None:
            return found
        exact = self.models.exact.get(model)
        if exact is not None:
            found = (exact.item, exact.plugin)
        else:
            for prefix, registered in self.models.prefixes.items():
                if model.startswith(prefix):
                    try:
                        executor = registered.item(model[len(prefix) :])
                    except MissingComponent:
                        raise
                    except Exception as exc:
                        raise MissingComponent(
                            f"plugin {registered.plugin!r} could not serve model {model!r}: {type(exc).__name__}: {exc}"
                        ) from exc
                    found = (executor, registered.plugin)
                    break
        if found is None:
            raise MissingComponent(self.unknown_model(model) or f"no LLM executor for model {model!r}")
        self._executors[model] = found
        return found

    def unknown_model(self, model: str) -> str | None:
        """Why no loaded plugin serves `model`, with the fix; None when one does."""
        models = self.models
        if model in models.exact or any(model.startswith(p) for p in models.prefixes):
            return None
        known = ", ".join(sorted([*models.exact, *(p + "*" for p in models.prefixes)])) or "none"
        problem = f"no LLM executor for model {model!r} (registered: {known})"
        if f"{model}:" in models.prefixes:
            return f"{problem}; {model!r} names a provider, not a model: write {model}:<model name>"
        if ":" not in model:
            prefixes = [p for p in models.prefixes if p.endswith(":")]
            if prefixes:
                guesses = " or ".join(f"{p}{model}" for p in sorted(prefixes))
                return f"{problem}; a model string names its provider: did you mean {guesses}?"
        family = model.split(":", 1)[0]
        hint = _INSTALL_HINT.get(family, f"a plugin that registers {family!r} models")
        return f"{problem}; install {hint}"

    # ------------------------------------------------------------------ tools

    def visible_tools(self, state: RunState) -> tuple[ToolSpec, ...]:
        """The tools offered to the model in `state` (after `ExcludeTools` / `OnlyTools`)."""
        key = (state.excluded_tools, state.only_tools)
        view = self._tool_view
        if view[0] == key:
            return view[1]  # type: ignore[no-any-return]
        only = state.only_tools
        specs = tuple(
            spec
            for spec in self.tool_specs
            if spec.name not in state.excluded_tools and (only is None or spec.name in only)
        )
        view[:] = [key, specs]
        return specs

    # ------------------------------------------------------------------ decision and wrap hooks

    def wraps(self, hook_name: str, **kwargs: Any) -> list[AbstractAsyncContextManager[Any]]:
        """The async context managers a wrap hook's implementations return (outermost first)."""
        return self._call_hook(hook_name, kwargs) or []

    def decide(self, hook_name: str, **kwargs: Any) -> Any:
        """The first decision a decision hook's implementations return, or None."""
        return self._call_hook(hook_name, kwargs)

    def _call_hook(self, hook_name: str, kwargs: dict[str, Any]) -> Any:
        """Call a decision or wrap hook through pluggy; attribute a failure to its plugin."""
        if hook_name not in self.implemented:
            return None
        caller = getattr(self.pm.hook, hook_name)
        try:
            return caller(**kwargs)
        except Exception as exc:
            raise HookFailed(blame_caller(caller, exc), hook_name, exc) from exc


def wire(
    pm: pluggy.PluginManager,
    *,
    model: str | None,
    instructions: str | None,
    settings: Mapping[str, Any],
    max_steps: int | None,
) -> Wiring:
    """Call the registration hooks of `pm`'s plugins and resolve what they registered.

    Raises:
        PluginLoadError: a registration hook raised.
        ConfigurationError: two plugins registered the same model, tool, strategy or journal.
    """
    hook = pm.hook
    models, tools, runtime = ModelRegistrar(), ToolRegistrar(), RuntimeRegistrar()
    register(hook.agent_register_models, models)
    register(hook.agent_register_tools, tools)
    register(hook.agent_register_runtime, runtime)
    tool_specs = tuple(spec for spec, _ in tools.tools.values())
    chosen = runtime.strategy or runtime.default_strategy
    journal: Journal = runtime.journal.item if runtime.journal else MemoryJournal()
    state_keys = MappingProxyType({name: r.item for name, r in runtime.state_keys.items()})

    def make_agent_converter() -> Converter:
        converter = make_converter(state_keys)
        hook.agent_configure_converter(converter=converter)
        return converter

    codec = JsonCodec(make_agent_converter)
    journal.bind(codec)
    phases = MappingProxyType({phase: PhaseHook(pm, phase) for phase in PHASES})
    observers = tuple((impl.function, impl.plugin_name) for impl in reversed(hook.agent_on_event.get_hookimpls()))
    strategy = chosen.item if chosen else None
    concurrent = strategy is not None and strategy.concurrent
    return Wiring(
        pm=pm,
        model=model,
        instructions=instructions,
        settings=settings,
        max_steps=max_steps,
        phases=phases,
        tools=MappingProxyType(tools.tools),
        tool_specs=tool_specs,
        specs_by_name=MappingProxyType({spec.name: spec for spec in tool_specs}),
        tool_names=tuple(sorted(tools.tools)),
        models=models,
        strategy=strategy,
        concurrent=concurrent,
        journal=journal,
        state_keys=state_keys,
        approvers=tuple(runtime.approvers),
        redactors=tuple(r.item for r in runtime.redactors),
        codec=codec,
        observers=observers,
        implemented=frozenset(
            name
            for name, caller in vars(hook).items()
            if isinstance(caller, pluggy.HookCaller) and caller.get_hookimpls()
        ),
        straight_to_tools=not (phases["after_inference"] or phases["before_tool_execute"] or observers or concurrent),
        quiet=tuple(
            phase for phase in PHASES if not phases[phase] and not (phase == "after_tool_execute" and concurrent)
        ),
    )
