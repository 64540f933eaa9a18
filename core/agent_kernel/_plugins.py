"""Plugin loading and the phase-hook caller.

One `PluginManager` per Agent, made by `load_plugins`: entry points of the group
`agent_kernel.plugins` (unless autoload is off), then the plugins passed in code.
Loading is strict: duplicate names and unknown ``agent_*`` hooks fail at once.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import os
import sys
import types
from collections.abc import Callable, Iterable, Sequence
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any

import pluggy
from attrs import frozen

from . import hookspecs
from .errors import PluginError, PluginLoadError
from .hookspecs import PHASES
from .patches import ALLOWED, Checking, Patch

if TYPE_CHECKING:
    pass

GROUP = "agent_kernel.plugins"
ENV_DISABLE = "AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD"
ENV_ALLOW = "AGENT_KERNEL_PLUGINS"
ENV_TRACE = "AGENT_KERNEL_TRACE_HOOKS"


class _Manager(pluggy.PluginManager):
    """Treats every callable ``agent_*`` attribute as a hook implementation.

    So a mistyped hook name, marked or not, is caught by `check_pending`.
    """

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith("agent_"):
            method = getattr(plugin, name, None)
            if inspect.isroutine(method):
                return pluggy.HookimplOpts(
                    wrapper=False, hookwrapper=False, optionalhook=False, tryfirst=False, trylast=False, specname=None
                )
        return opts


@frozen
class PluginInfo:
    """A loaded plugin, for `agent-kernel plugins` and error messages."""

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    #: Why the plugin could not be loaded (only with ``load_plugins(..., skip_broken=True)``).
    error: str | None = None


def plugin_name(plugin: object) -> str:
    """The name a plugin object registers under: its ``name`` attribute, module or class name."""
    name = getattr(plugin, "name", None)
    if isinstance(name, str) and name:
        return name
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    return type(plugin).__name__ if not isinstance(plugin, type) else plugin.__name__


def _origin(obj: object, dist: str | None) -> str:
    """``"module agent_plugin_sqlite.plugin from agent-plugin-sqlite"``: what a plugin is and where it came from."""
    if isinstance(obj, ModuleType):
        what = f"module {obj.__name__}"
    elif isinstance(obj, type):
        what = f"class {obj.__module__}.{obj.__qualname__}"
    else:
        what = f"{type(obj).__module__}.{type(obj).__qualname__} object"
    return f"{what} from {dist}" if dist else f"{what} given in code"


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in ("", "0", "false", "no")


def _block_hint(name: str) -> str:
    """How to skip the installed plugin `name`, every way the kernel offers."""
    return (
        f"to load everything else, block it: Agent(block=[{name!r}]), `block = [{name!r}]` in the [agent] table "
        f"of agent.toml (or AGENT_KERNEL__AGENT__BLOCK='[\"{name}\"]'), `agent-kernel plugins --block {name}`; "
        f"or allow only the plugins you want with {ENV_ALLOW}=name,... ({ENV_DISABLE}=1 loads none)"
    )


def _hook_names(pm: pluggy.PluginManager) -> list[str]:
    """The names of the hooks that have a spec."""
    return [n for n, c in vars(pm.hook).items() if isinstance(c, pluggy.HookCaller) and c.spec is not None]


def _explain_invalid(pm: pluggy.PluginManager, plugin: object, name: str) -> str | None:
    """Say what pluggy refused in `plugin`, the way a plugin author can act on; None if unsure."""
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is None:
            continue
        function = getattr(plugin, attr)
        if (opts.get("wrapper") or opts.get("hookwrapper")) and (
            inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)
        ):
            return (
                f"plugin {name!r}: {attr} is marked wrapper=True but is an async def; a pluggy wrapper only wraps "
                "creating the coroutine, not the work it awaits. To surround awaited work, return an async context "
                "manager from a wrap hook instead (agent_wrap_run, agent_wrap_inference, agent_wrap_tool_call); "
                "a wrapper of a phase hook is a plain generator function (def ...: result = yield)"
            )
        caller = getattr(pm.hook, opts.get("specname") or attr, None)
        spec = caller.spec if isinstance(caller, pluggy.HookCaller) else None
        if spec is None:
            continue
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            continue
        required = [
            p.name
            for p in parameters
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
        unknown = [a for a in required if a not in spec.argnames]
        if unknown:
            listed = ", ".join(repr(a) for a in unknown)
            return (
                f"plugin {name!r}: {attr}({', '.join(required)}) takes {listed}, which {spec.name} does not "
                f"provide; its arguments are {', '.join(spec.argnames)} (take any of them, by name)"
            )
    return None


def _hook_problem(pm: pluggy.PluginManager, plugin: object, name: str) -> str | None:
    """What is wrong with the hooks of the registered `plugin`, or None."""
    for caller in pm.get_hookcallers(plugin) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            if caller.spec is None and not impl.optionalhook:
                close = difflib.get_close_matches(caller.name, _hook_names(pm), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                return (
                    f"plugin {name!r} implements {caller.name!r}, which is not a hook of agent-kernel; {hint}"
                    "(see agent_kernel.hookspecs for the hooks; mark hooks of other plugins with optionalhook=True)"
                )
            if impl.hookwrapper:
                return f"plugin {name!r}: {caller.name} uses old-style hookwrapper=True; use wrapper=True"
            if impl.wrapper and caller.name.startswith("agent_register_"):
                return (
                    f"plugin {name!r}: {caller.name} is marked wrapper=True, but registration hooks are called "
                    "one plugin at a time and cannot be wrapped; register from a plain implementation"
                )
            if caller.name.removeprefix("agent_") not in PHASES and inspect.iscoroutinefunction(impl.function):
                return (
                    f"plugin {name!r}: {caller.name} is an async def, but only phase hooks may be "
                    "async; make it a plain function (it runs synchronously inside the kernel)"
                )
    return None


def _is_plugin_class(obj: object) -> bool:
    """True for a class whose ``agent_*`` hooks are instance methods: an instance was meant."""
    if not isinstance(obj, type):
        return False
    return any(
        attr.startswith("agent_") and isinstance(inspect.getattr_static(obj, attr, None), types.FunctionType)
        for attr in dir(obj)
    )


def load_plugins(
    plugins: Iterable[object] = (),
    *,
    autoload: bool = True,
    block: Iterable[str] = (),
    skip_broken: bool = False,
) -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    """Build a plugin manager with the entry-point plugins and `plugins`.

    Entry points load first, so the plugins given in code run before them (LIFO).
    `block` skips plugins by name. ``AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD`` turns
    autoload off; ``AGENT_KERNEL_PLUGINS`` (comma-separated) allows only those
    entry points (empty allows none).

    Args:
        plugins: plugin objects (instances or modules) given in code.
        autoload: load the ``agent_kernel.plugins`` entry points.
        block: plugin names to skip.
        skip_broken: leave out an entry point that fails to import or to register,
            and report it in the returned infos with its `PluginInfo.error`, instead
            of raising (for ``agent-kernel plugins``).

    Raises:
        PluginLoadError: duplicate names, an entry point that fails to import (the
            message says how to block it), a class given instead of an instance, a
            hook name no spec declares (with the closest hook name), a hook argument
            the spec does not provide (with the valid ones), an async ``wrapper=True``,
            or an old-style ``hookwrapper``.
    """
    pm = _Manager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    blocked = set(block)
    infos: dict[str, PluginInfo] = {}
    sources: dict[str, tuple[str | None, str | None]] = {}
    broken: dict[str, PluginInfo] = {}

    def register(obj: object, name: str, dist: str | None, version: str | None) -> None:
        if name in blocked:
            return
        if _is_plugin_class(obj):
            assert isinstance(obj, type)
            raise PluginLoadError(
                f"plugin {name!r} is the class {obj.__module__}.{obj.__qualname__}, not a plugin object: "
                f"pass an instance: {obj.__name__}()"
                + (f" (fix the entry point {name!r} of {dist}: point it at an instance or a module)" if dist else "")
            )
        if dist is None and sources.get(name, (None, None))[0] is not None:
            # A plugin passed in code replaces the installed plugin of the same name:
            # Retry(...) given explicitly takes the place of the autoloaded "retry".
            pm.unregister(name=name)
            del sources[name]
        if name in sources or pm.get_plugin(name) is not None:
            other = _origin(pm.get_plugin(name), sources.get(name, (None, None))[0])
            raise PluginLoadError(
                f"two plugins are named {name!r} ({other} and {_origin(obj, dist)}); "
                "give one a different name or block one"
            )
        try:
            pm.register(obj, name=name)
        except pluggy.PluginValidationError as exc:
            with contextlib.suppress(Exception):
                pm.unregister(name=name)  # pluggy may have registered some hooks before refusing one
            raise PluginLoadError(_explain_invalid(pm, obj, name) or f"plugin {name!r}: {exc}") from exc
        problem = _hook_problem(pm, obj, name)
        if problem is not None:
            pm.unregister(name=name)
            raise PluginLoadError(problem)
        sources[name] = (dist, version)

    if autoload and not _truthy(os.environ.get(ENV_DISABLE)):
        allow_env = os.environ.get(ENV_ALLOW)
        allow = None if allow_env is None else {n.strip() for n in allow_env.split(",") if n.strip()}
        from importlib_metadata import entry_points

        seen: dict[str, str] = {}
        for ep in entry_points(group=GROUP):
            dist = ep.dist.name if ep.dist else None
            version = ep.dist.version if ep.dist else None
            if ep.name in seen:
                raise PluginLoadError(
                    f"entry point {ep.name!r} in group {GROUP!r} is declared by both "
                    f"{seen[ep.name]} and {dist}; uninstall one or block it"
                )
            seen[ep.name] = dist or "?"
            if ep.name in blocked or (allow is not None and ep.name not in allow):
                continue
            try:
                try:
                    obj = ep.load()
                except Exception as exc:
                    raise PluginLoadError(
                        f"entry point {ep.name!r} ({ep.value}) from {dist} failed to load: {exc!r}"
                    ) from exc
                register(obj, ep.name, dist, version)
            except PluginLoadError as exc:
                if skip_broken:
                    broken[ep.name] = PluginInfo(ep.name, dist, version, (), str(exc))
                    continue
                raise PluginLoadError(f"{exc}; {_block_hint(ep.name)}") from exc.__cause__ or exc

    for obj in plugins:
        register(obj, plugin_name(obj), None, None)

    for name, (dist, version) in sources.items():
        plugin = pm.get_plugin(name)
        hooks = tuple(sorted(impl.name for impl in pm.get_hookcallers(plugin) or ()))
        infos[name] = PluginInfo(name, dist, version, hooks)
    infos.update(broken)

    if _truthy(os.environ.get(ENV_TRACE)):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    return pm, infos


# Keyed by id() of the code object: code objects compare equal across modules when
# their source is the same (two plugins' identical register functions would merge).
Owners = dict[int, dict[int, str]]


def _owners(impls: Iterable[pluggy.HookImpl]) -> Owners:
    owners: Owners = {}
    for impl in impls:
        code = getattr(impl.function, "__code__", None)
        if code is not None:
            bound = getattr(impl.function, "__self__", None)
            owners.setdefault(id(code), {})[0 if bound is None else id(bound)] = impl.plugin_name
    return owners


def frame_owner(owners: Owners, frame: FrameType) -> str | None:
    """The plugin whose hook implementation `frame` runs, or None if it runs none.

    Instances of one class are told apart by the method's first argument (its ``self``).
    """
    by_instance = owners.get(id(frame.f_code))
    if by_instance is None:
        return None
    if len(by_instance) == 1:
        return next(iter(by_instance.values()))
    code = frame.f_code
    instance = frame.f_locals.get(code.co_varnames[0]) if code.co_argcount else None
    return by_instance.get(id(instance), "?")


class HookFailed(Exception):
    """A hook implementation raised; carries the plugin and hook for the outcome."""

    def __init__(self, plugin: str, hook: str, error: BaseException) -> None:
        super().__init__(f"{plugin}.{hook} raised {type(error).__name__}: {error}")
        self.plugin = plugin
        self.hook = hook
        self.error = error


class _ImplFailed(Exception):
    """Raised by a compiled phase call: implementation `n` raised (the cause)."""

    def __init__(self, n: int, out: list[tuple[str, Any]]) -> None:
        self.n, self.out = n, out


class PhaseHook:
    """Calls one phase hook and returns its validated patches with their sources.

    Implementations are called in pluggy's order (tryfirst, LIFO, trylast) straight
    from `HookCaller.get_hookimpls()`, so each result and exception is attributed to
    its plugin. If a wrapper is registered, or tracing is on, the call goes through
    pluggy's own executor instead, with each implementation shimmed to note what it
    returned: results are still attributed exactly, and a result that only a wrapper
    made is attributed to the wrappers.
    """

    __slots__ = (
        "allowed",
        "argnames",
        "call",
        "caller",
        "hook",
        "impls",
        "is_async",
        "name",
        "noted",
        "pluggy_impls",
        "via_pluggy",
        "wrappers",
    )

    def __init__(self, pm: pluggy.PluginManager, phase: str) -> None:
        self.name = "agent_" + phase
        self.allowed = ALLOWED[phase]
        caller = getattr(pm.hook, self.name)
        self.caller = caller
        self.argnames = tuple(caller.spec.argnames) if caller.spec else ()
        impls = list(reversed(caller.get_hookimpls()))
        self.via_pluggy = any(i.wrapper or i.hookwrapper for i in impls) or _truthy(os.environ.get(ENV_TRACE))
        self.impls = [(i.function, self._positions(i.argnames), i.plugin_name) for i in impls]
        self.call = self._compile()
        self.is_async = any(inspect.iscoroutinefunction(i.function) for i in impls)
        self.wrappers = "|".join(sorted({i.plugin_name for i in impls if i.wrapper})) or "?"
        self.noted: dict[int, str] = {}  # id(result) -> plugin, during one call through pluggy
        self.pluggy_impls = [self._noting(i) for i in caller.get_hookimpls()] if self.via_pluggy else []

    def _noting(self, impl: pluggy.HookImpl) -> pluggy.HookImpl:
        """A copy of `impl` that notes which plugin returned which result object."""
        if impl.wrapper:
            return impl
        function, plugin, noted = impl.function, impl.plugin_name, self.noted

        def note(*args: Any) -> Any:
            result = function(*args)
            if result is not None:
                noted[id(result)] = plugin
            return result

        copy = pluggy.HookImpl(impl.plugin, plugin, function, impl.opts)
        setattr(copy, "function", note)  # noqa: B010 (the attribute is typed Final)
        return copy

    def _positions(self, names: Sequence[str]) -> tuple[int, ...]:
        return tuple(self.argnames.index(n) for n in names)

    def __bool__(self) -> bool:
        """False when calling would do nothing (no implementations and no tracing)."""
        return bool(self.impls) or self.via_pluggy

    def _compile(self) -> Callable[[tuple[Any, ...]], list[tuple[str, Any]]]:
        """Generate the straight-line call of every implementation (the hot path of a run).

        Equivalent to looping over `impls`; unrolled, it costs a third less per phase.
        """
        lines = ["def call(args):", "    out = []", "    n = 0", "    try:", "        pass"]
        namespace: dict[str, Any] = {"_ImplFailed": _ImplFailed}
        for n, (function, positions, plugin) in enumerate(self.impls):
            namespace[f"f{n}"], namespace[f"p{n}"] = function, plugin
            arguments = ", ".join(f"args[{i}]" for i in positions)
            lines += [f"        n = {n}", f"        r = f{n}({arguments})", "        if r is not None:"]
            lines += [f"            out.append((p{n}, r))"]
        lines += ["    except Exception as exc:", "        raise _ImplFailed(n, out) from exc", "    return out"]
        exec("\n".join(lines), namespace)
        return namespace["call"]  # type: ignore[no-any-return]

    def call_sync(self, args: tuple[Any, ...]) -> list[tuple[str, Any]]:
        """Call every implementation; return (plugin, raw result) pairs, None dropped."""
        if self.via_pluggy:
            return self._via_pluggy(args)
        try:
            return self.call(args)
        except _ImplFailed as failed:
            for _, result in failed.out:  # coroutines of async implementations that will never run
                close = getattr(result, "close", None)
                if close is not None and hasattr(result, "__await__"):
                    close()
            exc = failed.__cause__
            assert isinstance(exc, Exception)
            raise HookFailed(self.impls[failed.n][2], self.name, exc) from exc

    def _via_pluggy(self, args: tuple[Any, ...]) -> list[tuple[str, Any]]:
        self.noted.clear()
        kwargs = dict(zip(self.argnames, args, strict=True))
        try:
            # pluggy's executor (tracing included) over the noting copies of the impls
            results = self.caller._hookexec(self.name, self.pluggy_impls, kwargs, False)
        except Exception as exc:
            raise HookFailed(blame_caller(self.caller, exc), self.name, exc) from exc
        return [(self.noted.get(id(result), self.wrappers), result) for result in results]

    def validate(self, plugin: str, result: Any, checking: Checking | None = None) -> list[Patch]:
        """Check a result's shape and legality; raise `PluginError` naming the plugin.

        With a `checking`, each patch is also checked against the run (`Patch.check`:
        declared state keys and their types, message indexes), so a mistake fails the
        run now, not its resume.
        """
        if not isinstance(result, (list, tuple)):
            raise PluginError(
                f"returned {type(result).__name__}; a phase hook returns a list of patches or None",
                plugin=plugin,
                hook=self.name,
            )
        for patch in result:
            kind = type(patch)
            if kind not in self.allowed:
                what = kind.__name__ if isinstance(patch, Patch) else f"non-patch {patch!r}"
                legal = ", ".join(sorted(t.__name__ for t in self.allowed))
                raise PluginError(
                    f"returned {what}, which {self.name} does not accept (legal: {legal})",
                    plugin=plugin,
                    hook=self.name,
                )
            if checking is not None:
                problem = patch.check(checking)
                if problem is not None:
                    raise PluginError(problem, plugin=plugin, hook=self.name)
        return list(result)


def blame_caller(caller: pluggy.HookCaller, exc: BaseException) -> str:
    """The plugin whose implementation of `caller` appears last in `exc`'s traceback."""
    owners = _owners(caller.get_hookimpls())
    tb = exc.__traceback__
    found = "?"
    while tb is not None:
        found = frame_owner(owners, tb.tb_frame) or found
        tb = tb.tb_next
    return found
