"""One test per hook (`test_hook_<name>`, checked by `test_every_hook_has_a_test`), each
asserting the hook's real effect, then the rules every phase hook follows: the patch
legality table, return shapes, blame, concurrency and order, approvals, Stop, context
injection, tool visibility and interrupted tool intents.
"""

from __future__ import annotations

import gc
import logging
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio

from agent_kernel import (
    Agent,
    ApprovalRequest,
    Approve,
    Context,
    Deny,
    Fail,
    Fallback,
    Message,
    Request,
    Response,
    Retry,
    StateKey,
    ToolCall,
    ToolResult,
    ToolSpec,
    hookimpl,
    hookspecs,
    patches,
)
from agent_kernel import events as ev
from agent_kernel.errors import (
    AgentError,
    ConfigurationError,
    InferenceError,
    JournalCorrupt,
    PluginLoadError,
    StaleAttempt,
    ToolInputError,
    ToolSuspended,
    UnknownRequest,
    UnknownRun,
)
from agent_kernel.journal import Decided, Ended, Intended, MemoryJournal, Retried, Started, ToolDone, Waiting
from agent_kernel.testing import (
    CodecJournal,
    FakeTools,
    RunRecorder,
    ScriptedModel,
    SequentialStrategy,
    check_phase_grammar,
    fault,
    install_distribution,
    text,
    tool_call,
)

MakeAgent = Callable[..., Agent]


def plain_agent(*plugins: object) -> Agent:
    """An isolated agent for tests that run on a backend of their own (not pytest-trio's)."""
    return Agent(model="scripted", plugins=plugins, autoload=False)


def make_plugin(name: str, **hooks: Callable[..., Any]) -> Any:
    """A plugin named `name` whose hooks are the given plain functions (no ``self``)."""
    namespace: dict[str, Any] = {"name": name}
    for hook_name, function in hooks.items():
        namespace[hook_name] = staticmethod(function)
    return type(name.title().replace("-", "").replace("_", ""), (), namespace)()


def add(a: int = 0, b: int = 0) -> int:
    """Add two numbers."""
    return a + b


def add_script(answer: str = "It is 5") -> list[Any]:
    return [tool_call("add", a=2, b=3), text(answer)]


def roles(messages: Any) -> list[str]:
    return [m.role for m in messages]


def test_every_hook_has_a_test() -> None:
    """STYLE 15: each hook in hookspecs.py has a `test_hook_<name>` here."""
    hooks = [
        n for n in dir(hookspecs) if n.startswith("agent_") and hasattr(getattr(hookspecs, n), "agent_kernel_spec")
    ]
    assert len(hooks) >= 18
    missing = [h for h in hooks if f"test_hook_{h}" not in globals()]
    assert not missing, f"hooks without a test_hook_<name> test: {missing}"


# ===================================================================================== registration


class EchoExecutor:
    """A minimal executor answering with a fixed text."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.requests: list[Request] = []

    async def infer(self, request: Request, deltas: Any) -> Response:
        self.requests.append(request)
        return Response(Message("assistant", self.answer))


async def test_hook_agent_register_models() -> None:
    exact = EchoExecutor("exact answer")
    built: list[str] = []

    def family(rest: str) -> EchoExecutor:
        built.append(rest)
        return EchoExecutor(f"family answer from {rest}")

    provider = make_plugin(
        "provider",
        agent_register_models=lambda models: (models.add("fake-exact", exact), models.add_prefix("fam:", family)),
    )
    outcome = await Agent(model="fake-exact", plugins=[provider], autoload=False).run("hi")
    assert (outcome.reason, outcome.output) == ("completed", "exact answer")
    assert [m.content for m in exact.requests[0].messages] == ["hi"]

    agent = Agent(model="fam:small", plugins=[provider], autoload=False)
    assert built == [], "a prefix factory is called lazily, not when the agent is built"
    first = await agent.run("one")
    second = await agent.run("two")
    assert (first.output, second.output) == ("family answer from small", "family answer from small")
    assert built == ["small"], "the factory is called once per model string"

    unknown = await Agent(model="nobody:knows", plugins=[provider], autoload=False).run("hi")
    assert unknown.reason == "error" and unknown.error is not None
    assert unknown.error.type == "MissingComponent" and "nobody:knows" in unknown.error.message

    rival = make_plugin("rival", agent_register_models=lambda models: models.add("fake-exact", EchoExecutor("x")))
    with pytest.raises(ConfigurationError, match=r"'fake-exact'.*(provider.*rival|rival.*provider)"):
        Agent(model="fake-exact", plugins=[provider, rival], autoload=False)


async def test_a_tool_registered_alone_runs_without_a_tool_strategy(make_agent: MakeAgent) -> None:
    """The kernel runs tool calls one after another when no plugin set a strategy."""

    async def lookup(arguments: Any, context: Any) -> ToolResult:
        return ToolResult(f"found {arguments['q']}")

    owner = make_plugin("lookup-plugin", agent_register_tools=lambda tools: tools.add(ToolSpec("lookup"), lookup))
    model = ScriptedModel([[tool_call("lookup", q="cats"), tool_call("lookup", q="dogs")], text("done")])
    outcome = await make_agent(model, owner).run("find cats and dogs")
    assert outcome.reason == "completed"
    assert [m.content for m in outcome.state.messages if m.role == "tool"] == ["found cats", "found dogs"]


async def test_hook_agent_register_tools(make_agent: MakeAgent) -> None:
    seen: list[tuple[dict[str, Any], Any]] = []

    async def lookup(arguments: Any, context: Any) -> ToolResult:
        seen.append((dict(arguments), context))
        return ToolResult(f"found {arguments['q']}")

    spec = ToolSpec("lookup", "Look something up", {"type": "object", "properties": {"q": {"type": "string"}}})
    owner = make_plugin("lookup-plugin", agent_register_tools=lambda tools: tools.add(spec, lookup))
    model = ScriptedModel([tool_call("lookup", q="cats"), text("done")])
    agent = make_agent(model, owner, FakeTools())
    assert [(t.name, t.plugin) for t in agent.tools] == [("lookup", "lookup-plugin")]
    outcome = await agent.run("find cats", run_id="tools-run")
    assert outcome.reason == "completed"
    assert [t.name for t in model.requests[0].tools] == ["lookup"]
    assert model.requests[0].tools[0].parameters["properties"] == {"q": {"type": "string"}}
    ((arguments, context),) = seen
    assert arguments == {"q": "cats"}
    assert (context.run_id, context.step, context.call_id, context.attempt) == ("tools-run", 1, "call_1_1", 1)
    assert context.idempotency_key == "tools-run:1:call_1_1"
    tool_message = outcome.state.messages[2]
    assert (tool_message.role, tool_message.content, tool_message.tool_call_id) == ("tool", "found cats", "call_1_1")

    twin = make_plugin("twin", agent_register_tools=lambda tools: tools.add(ToolSpec("lookup"), lookup))
    with pytest.raises(ConfigurationError, match=r"'lookup'.*lookup-plugin.*twin|'lookup'.*twin.*lookup-plugin"):
        make_agent(owner, twin)


async def test_hook_agent_register_runtime(make_agent: MakeAgent) -> None:
    class CountingStrategy(SequentialStrategy):
        def __init__(self) -> None:
            self.batches: list[list[str]] = []

        async def run(self, calls: Any, execute: Any) -> None:
            self.batches.append([c.id for c in calls])
            await super().run(calls, execute)

    strategy, journal = CountingStrategy(), MemoryJournal()
    key = StateKey("runtime.seen", int, 0)

    def register(runtime: Any) -> None:
        runtime.set_tool_strategy(strategy)
        runtime.set_journal(journal)
        runtime.add_state_key(key)

    machinery = make_plugin(
        "machinery",
        agent_register_runtime=register,
        agent_step_end=lambda ctx: [patches.IncrementData(key)],
    )
    agent = make_agent(ScriptedModel(add_script()), FakeTools(add, strategy=None), machinery)
    assert agent.journal is journal
    outcome = await agent.run("2+3?", run_id="rt")
    assert outcome.reason == "completed" and outcome.output == "It is 5"
    assert strategy.batches == [["call_1_1"]], "the registered strategy ran the step's calls"
    assert await journal.runs() == ["rt"] and len(await journal.load("rt")) > 5, "the run is journaled there"
    assert outcome.state.get(key) == 2

    class Other(SequentialStrategy):
        pass

    rival = make_plugin("rival", agent_register_runtime=lambda runtime: runtime.set_tool_strategy(Other()))
    with pytest.raises(ConfigurationError, match=r"tool strategy.*(machinery.*rival|rival.*machinery)"):
        make_agent(machinery, rival)


async def test_runtime_approver_decides_before_suspending(make_agent: MakeAgent) -> None:
    decided: list[str] = []

    async def approver(request: Any, state: Any) -> Approve | Deny | None:
        decided.append(request.tool)
        return Deny("policy says no") if request.call.arguments.get("a") == 13 else None

    gate = make_plugin(
        "gate",
        agent_register_runtime=lambda runtime: runtime.add_approver(approver),
        agent_before_tool_execute=lambda call: [patches.Suspend("check")],
    )
    tools = FakeTools(add)
    model = ScriptedModel([[tool_call("add", a=13, b=1), tool_call("add", a=1, b=1)], text("done")])
    outcome = await make_agent(model, tools, gate).run("go")
    assert outcome.reason == "suspended", "the approver left the second call undecided"
    assert [r.call.id for r in outcome.pending] == ["call_1_2"]
    assert decided == ["add", "add"]
    assert tools.count() == 0


def test_hook_agent_register_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    source = """
    from agent_kernel import hookimpl

    def configure(parser):
        parser.add_argument("who")

    def run(args):
        print(f"Hello, {args.who}!")
        return 7

    @hookimpl
    def agent_register_commands(commands):
        commands.add("greet", configure, run, help="say hello")
    """
    install_distribution(tmp_path, "agent-plugin-greet-cli", "greet-cli", "agent_plugin_greet_cli", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "greet-cli")
    from agent_kernel._cli import build_parser, main

    _, registrar = build_parser()
    assert registrar.commands["greet"].plugin == "greet-cli", "the command records the plugin it came from"
    assert main(["greet", "World"]) == 7
    assert capsys.readouterr().out == "Hello, World!\n"


async def test_hook_agent_configure_converter(make_agent: MakeAgent) -> None:
    class Budget:  # a plain class: cattrs cannot (de)serialise it without hooks
        def __init__(self, cents: int) -> None:
            self.cents = cents

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Budget) and other.cents == self.cents

        __hash__ = None  # type: ignore[assignment]

    key: StateKey[Budget | None] = StateKey("budget.left", Budget, None)
    journal = CodecJournal()

    def configure(converter: Any) -> None:
        converter.register_unstructure_hook(Budget, lambda b: {"cents": b.cents})
        converter.register_structure_hook(Budget, lambda raw, _: Budget(raw["cents"]))

    def register(runtime: Any) -> None:
        runtime.add_state_key(key)
        runtime.set_journal(journal)

    def budget_plugin(with_hooks: bool) -> Any:
        hooks: dict[str, Any] = {
            "agent_register_runtime": register,
            "agent_step_start": lambda ctx: [patches.SetData(key, Budget(100 - ctx.step))],
        }
        if with_hooks:
            hooks["agent_configure_converter"] = configure
        return make_plugin("budget", **hooks)

    first = make_agent(ScriptedModel(add_script()), FakeTools(add), budget_plugin(True))
    outcome = await first.run("go", run_id="budget-run")
    assert outcome.reason == "completed" and outcome.state.get(key) == Budget(98)
    assert any('"cents":99' in t for t in journal.texts["budget-run"]), "the value is journaled as the hook encodes it"

    # another process: everything comes back through the converter
    second = make_agent(ScriptedModel(add_script()), FakeTools(add), budget_plugin(True))
    again = await second.resume("budget-run")
    assert again.reason == "completed" and again.state.get(key) == Budget(98)

    without = make_agent(ScriptedModel(add_script()), FakeTools(add), budget_plugin(False))
    failed = await without.run("go", run_id="budget-run-2")
    assert failed.reason == "error", "without the converter hooks the value cannot be journaled"

    # the plugin that owns a journaled key was removed: resuming says so, by the key's name
    uses_journal = make_plugin("journal-only", agent_register_runtime=lambda runtime: runtime.set_journal(journal))
    with pytest.raises(JournalCorrupt, match=r"state key 'budget\.left', which no loaded plugin declares"):
        await make_agent(ScriptedModel(add_script()), FakeTools(add), uses_journal).resume("budget-run")


# ===================================================================================== run


async def test_hook_agent_run_start(make_agent: MakeAgent) -> None:
    seen: list[tuple[bool, int, list[str]]] = []
    key = StateKey("start.count", int, 0)

    def run_start(ctx: Context) -> list[patches.Patch]:
        seen.append((ctx.resumed, ctx.attempt, [m.content for m in ctx.state.messages]))
        if ctx.resumed:
            return [patches.IncrementData(key)]
        return [patches.AppendMessages([Message("user", "(from run_start)")]), patches.IncrementData(key)]

    model = ScriptedModel([fault("down", retryable=False), text("hello")])
    declare = lambda runtime: runtime.add_state_key(key)  # noqa: E731
    agent = make_agent(model, make_plugin("starter", agent_run_start=run_start, agent_register_runtime=declare))
    outcome = await agent.run("hi", run_id="start")
    assert outcome.reason == "error"
    assert [m.content for m in model.requests[0].messages] == ["hi", "(from run_start)"]
    assert outcome.state.get(key) == 1
    again = await agent.resume("start")
    assert again.reason == "completed" and again.state.get(key) == 2
    assert seen == [(False, 1, ["hi"]), (True, 2, ["hi", "(from run_start)"])]
    finished = await agent.resume("start")
    assert finished.state == again.state and len(seen) == 2, "a finished run is not started again"


async def test_hook_agent_wrap_run(make_agent: MakeAgent, recorder: RunRecorder) -> None:
    log: list[str] = []

    def resource(label: str) -> Callable[[Context], Any]:
        @asynccontextmanager
        async def manager() -> AsyncIterator[None]:
            log.append(f"{label} open after {recorder.phases[-1]}")
            try:
                yield
            finally:
                log.append(f"{label} close after {recorder.phases[-1]}")

        return lambda ctx: manager()

    def tool_sees_resources() -> str:
        log.append("tool")
        return "ok"

    first = make_plugin("first", agent_wrap_run=resource("A"))
    second = make_plugin("second", agent_wrap_run=resource("B"))
    model = ScriptedModel([tool_call("tool_sees_resources"), text("done")])
    outcome = await make_agent(model, FakeTools(tool_sees_resources), first, second).run("go")
    assert outcome.reason == "completed"
    # pluggy calls `second` first (LIFO): its manager is outermost
    assert log == [
        "B open after run_start",
        "A open after run_start",
        "tool",
        "A close after step_end",
        "B close after step_end",
    ]
    assert recorder.phases[-1] == "run_end"

    log.clear()
    model = ScriptedModel([text("never")])
    broken = make_plugin("broken", agent_wrap_run=lambda ctx: _failing_manager(on_enter=True))
    outcome = await make_agent(model, first, broken).run("go")
    assert outcome.reason == "error" and outcome.error is not None
    assert outcome.error.hook == "agent_wrap_run" and "enter failed" in outcome.error.message
    assert model.requests == [], "no step runs without the run's resources"
    assert log == [], "managers after the failing one are not entered"


async def test_wrap_run_exit_failure_names_the_hook(make_agent: MakeAgent) -> None:
    broken = make_plugin("broken", agent_wrap_run=lambda ctx: _failing_manager(on_enter=False))
    outcome = await make_agent(ScriptedModel([text("hi")]), broken).run("go")
    assert outcome.reason == "error" and outcome.error is not None
    assert "exit failed" in outcome.error.message
    assert outcome.error.hook == "agent_wrap_run", f"a failing resource must be blamed on its hook: {outcome.error}"


@asynccontextmanager
async def _failing_manager(*, on_enter: bool) -> AsyncIterator[None]:
    if on_enter:
        raise RuntimeError("enter failed")
    yield
    raise RuntimeError("exit failed")


# ===================================================================================== step


async def test_hook_agent_step_start(make_agent: MakeAgent, recorder: RunRecorder) -> None:
    steps: list[tuple[int, int]] = []

    def step_start(ctx: Context) -> list[patches.Patch] | None:
        steps.append((ctx.step, ctx.state.step))
        return [patches.Stop("enough", "two steps are plenty")] if ctx.step == 2 else None

    model = ScriptedModel([tool_call("add", a=1, b=1), tool_call("add", a=2, b=2), text("never")])
    outcome = await make_agent(model, FakeTools(add), make_plugin("stepper", agent_step_start=step_start)).run("go")
    assert steps == [(1, 0), (2, 1)], "ctx.step is the new step; the state still holds the previous one"
    assert outcome.reason == "stopped" and outcome.stop is not None
    assert (outcome.stop.code, outcome.stop.detail) == ("enough", "two steps are plenty")
    assert len(model.requests) == 1, "a Stop at step_start sends no request"
    assert recorder.phases[-3:] == ["step_start", "step_end", "run_end"], "the stopped step still reaches step_end"


async def test_hook_agent_step_end(make_agent: MakeAgent) -> None:
    seen: list[list[str]] = []

    def step_end(ctx: Context) -> list[patches.Patch] | None:
        seen.append(roles(ctx.state.messages))
        return [patches.AppendMessages([Message("user", "check your work")])] if ctx.step == 1 else None

    model = ScriptedModel([tool_call("add", a=2, b=3), text("5"), text("still 5")])
    outcome = await make_agent(model, FakeTools(add), make_plugin("ender", agent_step_end=step_end)).run("2+3")
    assert seen[0] == ["user", "assistant", "tool"], "step_end sees the step's tool results"
    assert roles(model.requests[1].messages) == ["user", "assistant", "tool", "user"]
    assert model.requests[1].messages[-1].content == "check your work"
    assert outcome.reason == "completed" and outcome.output == "5"
    assert len(model.requests) == 2


# ===================================================================================== inference


async def test_hook_agent_before_inference(make_agent: MakeAgent) -> None:
    requests: list[Request] = []

    def before(ctx: Context, request: Request) -> list[patches.Patch] | None:
        requests.append(request)
        if ctx.step == 1:
            return [
                patches.InjectContext("only for step 1"),
                patches.ExcludeTools({"secret"}),
                patches.ToolChoice("add"),
            ]
        return None

    def secret() -> str:
        """Do not show me."""
        return "s"

    model = ScriptedModel([tool_call("add", a=1, b=2), text("3")])
    agent = make_agent(model, FakeTools(add, secret), make_plugin("shaper", agent_before_inference=before))
    outcome = await agent.run("1+2")
    assert outcome.reason == "completed"
    assert [t.name for t in requests[0].tools] == ["add", "secret"], "the hook sees the request before its patches"
    first, second = model.requests
    assert [(m.role, m.content) for m in first.messages] == [("system", "only for step 1"), ("user", "1+2")]
    assert [t.name for t in first.tools] == ["add"] and first.tool_choice == "add"
    assert "only for step 1" not in [m.content for m in second.messages], "InjectContext lasts one inference"
    assert [t.name for t in second.tools] == ["add"], "ExcludeTools lasts"
    assert second.tool_choice == "auto", "ToolChoice lasts one inference"


async def test_hook_agent_on_inference_error(make_agent: MakeAgent, autojump_clock: Any) -> None:
    attempts: list[tuple[int, str]] = []

    def retry_twice(attempt: int, error: Exception) -> Retry | None:
        attempts.append((attempt, type(error).__name__))
        return Retry(2.5) if attempt <= 2 else None

    model = ScriptedModel([fault("overloaded", times=2), text("finally")])
    agent = make_agent(model, make_plugin("retrier", agent_on_inference_error=retry_twice))
    events: list[ev.Event] = []
    async with agent.stream("hi", run_id="retry") as stream:
        async for event in stream:
            events.append(event)
    outcome = stream.outcome
    assert outcome is not None and (outcome.reason, outcome.output) == ("completed", "finally")
    assert attempts == [(1, "InferenceError"), (2, "InferenceError")]
    assert outcome.stats.retries == 2 and outcome.stats.llm_calls == 1
    retried = [e for e in await agent.journal.load("retry") if isinstance(e, Retried)]
    assert [(r.what, r.attempt, r.delay) for r in retried] == [("inference", 1, 2.5), ("inference", 2, 2.5)]
    assert [(e.attempt, e.delay) for e in events if isinstance(e, ev.RetryScheduled)] == [(1, 2.5), (2, 2.5)]

    # the server's retry_after wins over a shorter delay
    model = ScriptedModel([fault(InferenceError("slow down", retryable=True, retry_after=30.0)), text("ok")])
    agent = make_agent(model, make_plugin("quick", agent_on_inference_error=lambda attempt: Retry(1.0)))
    await agent.run("hi", run_id="after")
    retried = [e for e in await agent.journal.load("after") if isinstance(e, Retried)]
    assert [r.delay for r in retried] == [30.0]

    # Fallback sends the same request to another model
    backup = ScriptedModel([text("from the backup")], model="backup")
    backup.name = "backup-model"
    model = ScriptedModel([fault("down", retryable=False), text("never")])
    agent = make_agent(model, backup, make_plugin("fallback", agent_on_inference_error=lambda: Fallback("backup")))
    outcome = await agent.run("hi")
    assert (outcome.reason, outcome.output) == ("completed", "from the backup")
    assert [r.model for r in backup.requests] == ["backup"]

    # Fail, and no decision at all, end the run with the executor's error
    for decider in (lambda: Fail(), lambda: None):
        model = ScriptedModel([fault("bad request", retryable=False), text("never")])
        outcome = await make_agent(model, make_plugin("decider", agent_on_inference_error=decider)).run("hi")
        assert outcome.reason == "error" and outcome.error is not None
        assert "bad request" in outcome.error.message and outcome.error.plugin == "scripted"
        assert len(model.requests) == 1


async def test_hook_agent_wrap_inference(make_agent: MakeAgent) -> None:
    log: list[str] = []

    def wrapper(label: str) -> Callable[..., Any]:
        @asynccontextmanager
        async def manager(request: Request) -> AsyncIterator[None]:
            log.append(f"{label} enter {request.model}")
            yield
            log.append(f"{label} exit")

        return lambda request: manager(request)

    class Spy(ScriptedModel):
        async def infer(self, request: Request, deltas: Any) -> Response:
            log.append("infer")
            return await super().infer(request, deltas)

    model = Spy([text("hi")])
    inner = make_plugin("inner", agent_wrap_inference=wrapper("inner"))
    outer = make_plugin("outer", agent_wrap_inference=wrapper("outer"))
    assert (await make_agent(model, inner, outer).run("x")).reason == "completed"
    assert log == ["outer enter scripted", "inner enter scripted", "infer", "inner exit", "outer exit"]

    # an exception from a manager counts as a failed inference
    failures: list[str] = []

    @asynccontextmanager
    async def limiter() -> AsyncIterator[None]:
        if not failures:
            raise InferenceError("rate limited", retryable=True)
        yield

    def on_error(error: Exception) -> Retry:
        failures.append(str(error))
        return Retry(0)

    model = ScriptedModel([text("through")])
    plugin = make_plugin("limiter", agent_wrap_inference=lambda: limiter(), agent_on_inference_error=on_error)
    outcome = await make_agent(model, plugin).run("x")
    assert (outcome.reason, outcome.output, failures) == ("completed", "through", ["rate limited"])
    assert outcome.stats.retries == 1


async def test_hook_agent_after_inference(make_agent: MakeAgent) -> None:
    seen: list[tuple[str, list[str]]] = []

    def after(ctx: Context, response: Response) -> list[patches.Patch] | None:
        seen.append((response.message.content, roles(ctx.state.messages)))
        if ctx.step == 1:
            return [patches.AppendMessages([Message("user", "are you sure?")])]
        return None

    model = ScriptedModel([text("maybe"), text("yes")])
    outcome = await make_agent(model, make_plugin("critic", agent_after_inference=after)).run("q")
    assert seen[0] == ("maybe", ["user"]), "ctx.state does not contain the assistant message yet"
    assert [(m.role, m.content) for m in model.requests[1].messages] == [
        ("user", "q"),
        ("assistant", "maybe"),
        ("user", "are you sure?"),
    ], "AppendMessages lands after the assistant message and asks the model again"
    assert (outcome.reason, outcome.output) == ("completed", "yes")

    finisher = make_plugin("finisher", agent_after_inference=lambda: [patches.Finish("answer accepted")])
    model = ScriptedModel([tool_call("add", a=1, b=1), text("never")])
    tools = FakeTools(add)
    outcome = await make_agent(model, tools, finisher).run("q")
    assert outcome.reason == "completed" and outcome.stop is not None and outcome.stop.detail == "answer accepted"
    assert tools.count() == 0 and len(model.requests) == 1


# ===================================================================================== tools


async def test_hook_agent_before_tool_execute(make_agent: MakeAgent) -> None:
    calls_seen: list[tuple[str, dict[str, Any]]] = []

    def before(call: ToolCall) -> list[patches.Patch]:
        calls_seen.append((call.id, dict(call.arguments)))
        a = call.arguments["a"]
        if a == 1:
            return [patches.Block("adding 1 is forbidden")]
        if a == 2:
            return [patches.ProvideResult("cached: 4")]
        return [patches.RewriteArguments({"a": 100, "b": 1})]

    tools = FakeTools(add)
    model = ScriptedModel(
        [[tool_call("add", a=1, b=1), tool_call("add", a=2, b=2), tool_call("add", a=3, b=3)], text("ok")]
    )
    outcome = await make_agent(model, tools, make_plugin("guard", agent_before_tool_execute=before)).run("go")
    assert calls_seen == [
        ("call_1_1", {"a": 1, "b": 1}),
        ("call_1_2", {"a": 2, "b": 2}),
        ("call_1_3", {"a": 3, "b": 3}),
    ]
    assert [(i.name, i.arguments) for i in tools.invocations] == [("add", {"a": 100, "b": 1})]
    results = [(m.tool_call_id, m.content, m.is_error) for m in outcome.state.messages if m.role == "tool"]
    assert results == [
        ("call_1_1", "adding 1 is forbidden", True),
        ("call_1_2", "cached: 4", False),
        ("call_1_3", "101", False),
    ]


async def test_hook_agent_on_tool_error(make_agent: MakeAgent) -> None:
    attempts: list[int] = []

    def flaky(tool_context: Any) -> str:
        attempts.append(tool_context.attempt)
        if tool_context.attempt == 1:
            raise ConnectionError("reset by peer")
        return "worked"

    def strict(a: int = 0) -> str:
        raise ToolInputError("a must be positive")

    def broken() -> str:
        raise ValueError("always broken")

    decisions: list[tuple[str, int, str]] = []

    def decide(call: ToolCall, error: Exception, attempt: int) -> Retry | Fail:
        decisions.append((call.name, attempt, type(error).__name__))
        return Retry(0) if call.name == "flaky" else Fail()

    model = ScriptedModel([[tool_call("flaky"), tool_call("strict", a=-1), tool_call("broken")], text("done")])
    tools = FakeTools(flaky, strict, broken)
    outcome = await make_agent(model, tools, make_plugin("decider", agent_on_tool_error=decide)).run("go")
    assert outcome.reason == "completed"
    assert attempts == [1, 2]
    assert decisions == [("flaky", 1, "ConnectionError"), ("broken", 1, "ValueError")], "ToolInputError skips the hook"
    results = {m.tool_call_id: (m.content, m.is_error) for m in outcome.state.messages if m.role == "tool"}
    assert results["call_1_1"] == ("worked", False)
    assert results["call_1_2"][1] and "a must be positive" in results["call_1_2"][0]
    assert results["call_1_3"][1] and "always broken" in results["call_1_3"][0]
    assert outcome.stats.retries == 1 and outcome.stats.tool_errors == 2


async def test_hook_agent_wrap_tool_call(make_agent: MakeAgent) -> None:
    log: list[str] = []

    def wrapper(label: str) -> Callable[..., Any]:
        @asynccontextmanager
        async def manager(call: ToolCall) -> AsyncIterator[None]:
            log.append(f"{label} enter {call.id}")
            yield
            log.append(f"{label} exit {call.id}")

        return lambda call: manager(call)

    def traced(a: int = 0, b: int = 0) -> int:
        log.append("tool")
        return a + b

    inner = make_plugin("inner", agent_wrap_tool_call=wrapper("inner"))
    outer = make_plugin("outer", agent_wrap_tool_call=wrapper("outer"))
    model = ScriptedModel([tool_call("traced", a=1, b=2), text("3")])
    assert (await make_agent(model, FakeTools(traced), inner, outer).run("x")).reason == "completed"
    assert log == ["outer enter call_1_1", "inner enter call_1_1", "tool", "inner exit call_1_1", "outer exit call_1_1"]

    # an exception from a manager counts as the tool's failure
    errors: list[str] = []

    @asynccontextmanager
    async def timeout_guard() -> AsyncIterator[None]:
        yield
        raise TimeoutError("tool took too long")

    plugin = make_plugin(
        "guard",
        agent_wrap_tool_call=lambda: timeout_guard(),
        agent_on_tool_error=lambda error: errors.append(str(error)),
    )
    model = ScriptedModel([tool_call("traced", a=1, b=2), text("3")])
    outcome = await make_agent(model, FakeTools(traced), plugin).run("x")
    assert errors == ["tool took too long"]
    tool_message = outcome.state.messages[2]
    assert tool_message.is_error and "tool took too long" in tool_message.content

    # wrap and error hooks see the call as it runs: with the arguments a plugin rewrote
    seen: list[tuple[str, dict[str, Any]]] = []

    @asynccontextmanager
    async def watch(call: ToolCall) -> AsyncIterator[None]:
        seen.append(("wrap", dict(call.arguments)))
        yield
        raise TimeoutError("late")

    watcher = make_plugin(
        "watcher",
        agent_before_tool_execute=lambda: [patches.RewriteArguments({"a": 10, "b": 20})],
        agent_wrap_tool_call=lambda call: watch(call),
        agent_on_tool_error=lambda call: seen.append(("error", dict(call.arguments))),
    )
    model = ScriptedModel([tool_call("traced", a=1, b=2), text("30")])
    await make_agent(model, FakeTools(traced), watcher).run("x")
    assert seen == [("wrap", {"a": 10, "b": 20}), ("error", {"a": 10, "b": 20})]


async def test_hook_agent_after_tool_execute(make_agent: MakeAgent) -> None:
    seen: list[tuple[str, dict[str, Any], str, bool]] = []

    def after(call: ToolCall, result: ToolResult) -> list[patches.Patch]:
        seen.append((call.id, dict(call.arguments), result.content, result.is_error))
        return [patches.Remind("double-check the sum")]

    rewrite = make_plugin("rewrite", agent_before_tool_execute=lambda: [patches.RewriteArguments({"a": 10, "b": 5})])
    model = ScriptedModel([tool_call("add", a=2, b=3), text("15")])
    outcome = await make_agent(
        model, FakeTools(add), rewrite, make_plugin("reminder", agent_after_tool_execute=after)
    ).run("x")
    assert seen == [("call_1_1", {"a": 10, "b": 5}, "15", False)], "the call carries the arguments it ran with"
    tool_message = model.requests[1].messages[2]
    assert tool_message.content == "15\n\n<system-reminder>double-check the sum</system-reminder>"
    assert outcome.reason == "completed"


# ===================================================================================== end and observers


async def test_hook_agent_run_end(make_agent: MakeAgent) -> None:
    key = StateKey("end.count", int, 0)
    outcomes: list[tuple[str, str, int]] = []

    def run_end(ctx: Context, outcome: Any) -> list[patches.Patch]:
        outcomes.append((outcome.reason, outcome.output, len(outcome.state.messages)))
        return [patches.IncrementData(key, 10)]

    model = ScriptedModel([*add_script()[:1], fault("down", retryable=False), *add_script()[1:]])
    declare = lambda runtime: runtime.add_state_key(key)  # noqa: E731
    agent = make_agent(
        model, FakeTools(add), make_plugin("ender", agent_run_end=run_end, agent_register_runtime=declare)
    )
    outcome = await agent.run("2+3", run_id="end")
    assert outcomes == [("error", "", 3)]
    assert outcome.state.get(key) == 10, "run_end patches are folded into the final state"
    again = await agent.resume("end")
    assert outcomes[-1] == ("completed", "It is 5", 4) and again.state.get(key) == 20
    await agent.resume("end")
    assert len(outcomes) == 2, "a finished run is not ended again"

    raiser = make_plugin("raiser", agent_run_end=lambda: 1 / 0)
    outcome = await make_agent(ScriptedModel([text("hi")]), raiser).run("x")
    assert outcome.reason == "error" and outcome.error is not None
    assert (outcome.error.plugin, outcome.error.hook, outcome.error.type) == (
        "raiser",
        "agent_run_end",
        "ZeroDivisionError",
    )
    assert outcome.output == "hi"


async def test_hook_agent_on_event(make_agent: MakeAgent, caplog: pytest.LogCaptureFixture) -> None:
    good: list[ev.Event] = []
    bad_calls: list[ev.Event] = []

    def bad(event: ev.Event) -> None:
        bad_calls.append(event)
        if isinstance(event, ev.StepStarted):
            raise RuntimeError("observer bug")

    agent = make_agent(
        ScriptedModel(add_script()),
        FakeTools(add),
        make_plugin("good", agent_on_event=good.append),
        make_plugin("bad", agent_on_event=bad),
    )
    streamed: list[ev.Event] = []
    with caplog.at_level(logging.ERROR, logger="agent_kernel"):
        async with agent.stream("2+3") as events:
            async for event in events:
                streamed.append(event)
    assert events.outcome is not None and events.outcome.reason == "completed", "a failing observer never fails the run"
    assert good == streamed and isinstance(good[-1], ev.RunEnded)
    assert [type(e) for e in bad_calls] == [ev.RunStarted, ev.StepStarted], "the failing observer is disabled"
    assert any("bad" in r.getMessage() and "agent_on_event" in r.getMessage() for r in caplog.records), "and logged"


# ===================================================================================== patch rules

_RULE_KEYS = (StateKey("rules.k", int, 0), StateKey("rules.n", int, 0))
_ALL_PATCHES: dict[str, patches.Patch] = {
    "AppendMessages": patches.AppendMessages([Message("user", "x")]),
    "InjectContext": patches.InjectContext("x"),
    "ToolChoice": patches.ToolChoice("auto"),
    "SetModel": patches.SetModel("scripted"),
    "SetWindow": patches.SetWindow(0),
    "ReplaceMessage": patches.ReplaceMessage(0, Message("user", "replaced")),
    "SetData": patches.SetData(_RULE_KEYS[0], 1),
    "IncrementData": patches.IncrementData(_RULE_KEYS[1]),
    "ExcludeTools": patches.ExcludeTools({"nothing"}),
    "OnlyTools": patches.OnlyTools({"add"}),
    "Stop": patches.Stop("code", "detail"),
    "Finish": patches.Finish("done"),
    "Block": patches.Block("no"),
    "Suspend": patches.Suspend("ask"),
    "ProvideResult": patches.ProvideResult("given"),
    "RewriteArguments": patches.RewriteArguments({"a": 1}),
    "Remind": patches.Remind("remember"),
}
_PHASES = [p for p in hookspecs.PHASES]


def test_every_patch_type_is_covered_by_the_rule_tests() -> None:
    known = {n for n in patches.__all__ if isinstance(getattr(patches, n), type) and n not in ("Patch",)}
    assert known - {"ALLOWED"} == set(_ALL_PATCHES), "add new patch types to _ALL_PATCHES"


def _phase_plugin(phase: str, result: Any, name: str = "offender") -> Any:
    """A plugin returning `result` from the first call of `phase`'s hook (None afterwards)."""
    calls: list[int] = []

    def hook(ctx: Context) -> Any:
        calls.append(ctx.step)
        return result if len(calls) == 1 else None

    def declare(runtime: Any) -> None:
        for key in _RULE_KEYS:
            runtime.add_state_key(key)

    return make_plugin(name, **{f"agent_{phase}": hook}, agent_register_runtime=declare)


_ILLEGAL = [
    (phase, name)
    for phase in _PHASES
    for name, patch in _ALL_PATCHES.items()
    if type(patch) not in patches.ALLOWED[phase]
]
_LEGAL = [
    (phase, name) for phase in _PHASES for name, patch in _ALL_PATCHES.items() if type(patch) in patches.ALLOWED[phase]
]


@pytest.mark.parametrize(("phase", "patch_name"), _ILLEGAL)
async def test_illegal_patch_ends_the_run_naming_plugin_and_hook(
    make_agent: MakeAgent, phase: str, patch_name: str
) -> None:
    model = ScriptedModel(add_script())
    agent = make_agent(model, FakeTools(add), _phase_plugin(phase, [_ALL_PATCHES[patch_name]]))
    outcome = await agent.run("go")
    assert outcome.reason == "error" and outcome.error is not None
    assert (outcome.error.plugin, outcome.error.hook, outcome.error.type) == (
        "offender",
        f"agent_{phase}",
        "PluginError",
    )
    assert patch_name in outcome.error.message


@pytest.mark.parametrize(("phase", "patch_name"), _LEGAL)
async def test_legal_patch_is_accepted(make_agent: MakeAgent, phase: str, patch_name: str) -> None:
    model = ScriptedModel(add_script())
    agent = make_agent(model, FakeTools(add), _phase_plugin(phase, [_ALL_PATCHES[patch_name]]))
    outcome = await agent.run("go")
    assert outcome.error is None, f"{patch_name} is legal in {phase}: {outcome.error}"
    assert outcome.reason in ("completed", "stopped", "suspended")


@pytest.mark.parametrize(
    "result",
    [patches.Stop("bare"), {"patches": []}, "Stop", 42, [patches.Stop("x"), "not a patch"], [None]],
    ids=["bare-patch", "dict", "str", "int", "list-with-str", "list-with-None"],
)
async def test_wrong_return_shape_names_plugin_and_hook(make_agent: MakeAgent, result: Any) -> None:
    outcome = await make_agent(ScriptedModel([text("hi")]), _phase_plugin("step_start", result)).run("go")
    assert outcome.reason == "error" and outcome.error is not None
    assert (outcome.error.plugin, outcome.error.hook) == ("offender", "agent_step_start")


async def test_illegal_patch_is_blamed_on_its_plugin_when_a_wrapper_is_present(make_agent: MakeAgent) -> None:
    class Wrapper:
        name = "wrapper"

        @hookimpl(wrapper=True)
        def agent_step_start(self, ctx: Context) -> Any:
            return (yield)

    offender = _phase_plugin("step_start", [patches.Block("not here")])
    innocent = make_plugin("innocent", agent_step_start=lambda: [patches.InjectContext("fine")])
    outcome = await make_agent(ScriptedModel([text("hi")]), offender, innocent, Wrapper()).run("go")
    assert outcome.reason == "error" and outcome.error is not None
    assert (outcome.error.plugin, outcome.error.hook) == ("offender", "agent_step_start"), outcome.error


_RAISING_PHASES = ["run_start", *[p for p in _PHASES if p not in ("run_start", "run_end")]]


@pytest.mark.parametrize("phase", _RAISING_PHASES)
async def test_raising_hook_ends_the_run_naming_plugin_and_hook_and_resume_finishes(
    make_agent: MakeAgent, recorder: RunRecorder, phase: str
) -> None:
    raised: list[int] = []

    def hook(ctx: Context) -> None:
        if not raised:
            raised.append(ctx.step)
            raise KeyError("plugin bug")

    tools = FakeTools(add)
    model = ScriptedModel(add_script())
    agent = make_agent(model, tools, make_plugin("buggy", **{f"agent_{phase}": hook}))
    outcome = await agent.run("2+3", run_id="raise")
    assert outcome.reason == "error" and outcome.error is not None
    assert (outcome.error.plugin, outcome.error.hook, outcome.error.type) == ("buggy", f"agent_{phase}", "KeyError")
    assert "plugin bug" in outcome.error.message
    entries = await agent.journal.load("raise")
    assert isinstance(entries[-1], Ended) and entries[-1].reason == "error"

    again = await agent.resume("raise")
    assert (again.reason, again.output) == ("completed", "It is 5")
    assert [(m.role, m.content) for m in again.state.messages] == [
        ("user", "2+3"),
        ("assistant", ""),
        ("tool", "5"),
        ("assistant", "It is 5"),
    ]
    assert len(model.requests) == 2 and tools.count() == 1, "nothing recorded was requested or run again"
    check_phase_grammar(recorder.calls)


async def test_async_hooks_of_one_phase_run_concurrently_and_fold_in_pluggy_order(make_agent: MakeAgent) -> None:
    await _concurrent_async_hooks(make_agent)


def test_async_hooks_run_concurrently_under_both_backends(run_async: Any) -> None:
    run_async(_concurrent_async_hooks, plain_agent)


async def _concurrent_async_hooks(make: MakeAgent) -> None:
    # `first` is registered last, so pluggy calls it first; it only finishes after
    # `second` has started, and `second` only after `first` has started: run one
    # after the other they would deadlock.
    first_started, second_started = anyio.Event(), anyio.Event()
    finished: list[str] = []

    async def first_hook(ctx: Context) -> list[patches.Patch]:
        first_started.set()
        await second_started.wait()
        await anyio.sleep(0)
        await anyio.sleep(0)
        finished.append("first")
        return [patches.AppendMessages([Message("user", "from first")])]

    async def second_hook(ctx: Context) -> list[patches.Patch]:
        second_started.set()
        await first_started.wait()
        finished.append("second")
        return [patches.AppendMessages([Message("user", "from second")])]

    def sync_hook(ctx: Context) -> list[patches.Patch]:
        return [patches.AppendMessages([Message("user", "from sync")])]

    model = ScriptedModel([text("ok")])
    agent = make(
        model,
        make_plugin("second", agent_run_start=second_hook),
        make_plugin("middle", agent_run_start=sync_hook),
        make_plugin("first", agent_run_start=first_hook),
    )
    with anyio.fail_after(30):
        outcome = await agent.run("go")
    assert outcome.reason == "completed"
    assert finished == ["second", "first"], "second finished first"
    contents = [m.content for m in model.requests[0].messages]
    assert contents == ["go", "from first", "from sync", "from second"], (
        "patches fold in pluggy order, not completion order"
    )


async def test_sync_hooks_fold_in_pluggy_order_with_tryfirst_and_trylast(make_agent: MakeAgent) -> None:
    def appender(label: str) -> Callable[[Context], list[patches.Patch]]:
        return lambda ctx: [patches.AppendMessages([Message("user", label)])]

    early = make_plugin("early", agent_run_start=hookimpl(tryfirst=True)(appender("tryfirst")))
    late = make_plugin("late", agent_run_start=hookimpl(trylast=True)(appender("trylast")))
    a = make_plugin("a", agent_run_start=appender("registered first"))
    b = make_plugin("b", agent_run_start=appender("registered last"))
    model = ScriptedModel([text("ok")])
    await make_agent(model, late, a, early, b).run("go")
    assert [m.content for m in model.requests[0].messages] == [
        "go",
        "tryfirst",
        "registered last",
        "registered first",
        "trylast",
    ]


async def test_raising_sync_hook_does_not_leak_unawaited_coroutines(make_agent: MakeAgent) -> None:
    async def async_hook(ctx: Context) -> None:
        return None

    def raising(ctx: Context) -> None:
        raise RuntimeError("sync hook fails after an async one was called")

    agent = make_agent(
        ScriptedModel([text("hi")]),
        make_plugin("raising", agent_step_start=raising),
        make_plugin("async-one", agent_step_start=async_hook),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = await agent.run("go")
        gc.collect()
    assert outcome.reason == "error" and outcome.error is not None and outcome.error.plugin == "raising"
    leaked = [str(w.message) for w in caught if "never awaited" in str(w.message)]
    assert not leaked, f"coroutines of async hooks were dropped without being awaited or closed: {leaked}"


# ===================================================================================== approvals


class Gate:
    """Suspends every call of the tools it guards."""

    name = "gate"

    def __init__(self, *tools: str) -> None:
        self.tools = set(tools)

    @hookimpl
    def agent_before_tool_execute(self, call: ToolCall) -> list[patches.Patch] | None:
        return [patches.Suspend(f"{call.name} needs approval")] if call.name in self.tools else None


async def _approval_round_trip(make: MakeAgent) -> None:
    before_runs: list[str] = []
    counter = make_plugin("counter", agent_before_tool_execute=lambda call: before_runs.append(call.id))
    tools = FakeTools(add)
    model = ScriptedModel([[tool_call("add", a=2, b=3), tool_call("add", a=1, b=1)], text("done")])
    agent = make(model, tools, Gate("add"), counter)
    outcome = await agent.run("go", run_id="approve")
    assert outcome.reason == "suspended"
    assert [(r.id, r.tool, r.reason, r.step) for r in outcome.pending] == [
        ("approve/1/call_1_1", "add", "add needs approval", 1),
        ("approve/1/call_1_2", "add", "add needs approval", 1),
    ]
    assert tools.count() == 0

    decisions = {"approve/1/call_1_1": Approve(arguments={"a": 20, "b": 3}), "approve/1/call_1_2": Deny("not today")}
    outcome = await agent.resume("approve", decisions=decisions)
    assert outcome.reason == "completed" and outcome.pending == ()
    assert [(i.name, i.arguments) for i in tools.invocations] == [("add", {"a": 20, "b": 3})], "the edit was applied"
    results = [(m.tool_call_id, m.content, m.is_error) for m in outcome.state.messages if m.role == "tool"]
    assert results[0] == ("call_1_1", "23", False)
    assert results[1][0] == "call_1_2" and results[1][2] and "not today" in results[1][1]
    assert before_runs == ["call_1_1", "call_1_2"], "hooks that ran before the suspension do not run again"
    assert len(model.requests) == 2

    # the same decisions again: applied once, nothing runs again
    journal_before = await agent.journal.load("approve")
    again = await agent.resume("approve", decisions={"approve/1/call_1_1": Approve(arguments={"a": 99, "b": 9})})
    assert (again.reason, again.output) == ("completed", "done")
    assert tools.count() == 1 and len(model.requests) == 2
    new = (await agent.journal.load("approve"))[len(journal_before) :]
    assert not any(isinstance(e, Decided) for e in new), "a decision delivered twice is journaled once"

    with pytest.raises(UnknownRequest, match="nope"):
        await agent.resume("approve", decisions={"nope": Approve()})
    assert len(await agent.journal.load("approve")) == len(journal_before) + len(new), "refused before journaling"


async def test_suspend_approve_deny_round_trip(make_agent: MakeAgent) -> None:
    await _approval_round_trip(make_agent)


def test_suspend_approve_deny_round_trip_under_both_backends(run_async: Any) -> None:
    run_async(_approval_round_trip, plain_agent)


async def test_resume_of_a_suspended_run_without_decisions_suspends_again(make_agent: MakeAgent) -> None:
    agent = make_agent(ScriptedModel(add_script()), FakeTools(add), Gate("add"))
    first = await agent.run("go", run_id="wait")
    second = await agent.resume("wait")
    assert (first.reason, second.reason) == ("suspended", "suspended")
    assert [r.id for r in second.pending] == [r.id for r in first.pending]


async def test_approval_requested_event_and_request_names_its_plugin(make_agent: MakeAgent) -> None:
    agent = make_agent(ScriptedModel(add_script()), FakeTools(add), Gate("add"))
    async with agent.stream("go") as events:
        requested = [e for e in [e async for e in events] if isinstance(e, ev.ApprovalRequested)]
    assert [e.request.call.id for e in requested] == ["call_1_1"]
    assert requested[0].request.plugin == "gate", "the approval request names the plugin that suspended the call"


class Asker:
    """A tool `ask` that suspends its run for `rounds` rounds of approval, like a sub-agent waiting for one.

    Not idempotent: only the suspension lets the kernel call it again.
    """

    def __init__(self, rounds: int = 1) -> None:
        self.rounds = rounds
        self.seen: list[dict[str, Any]] = []  # the decisions of each call

    def ask(self, tool_context: Any) -> str:
        decisions = dict(tool_context.decisions)
        self.seen.append(decisions)
        if len(self.seen) <= self.rounds:
            n = len(self.seen)
            inner = ToolCall(f"inner_{n}", "rm", {"path": f"/tmp/{n}"})
            request_id = f"{tool_context.idempotency_key}/{n}"
            raise ToolSuspended([ApprovalRequest(request_id, inner, "rm", "rm needs approval", n, "child")])
        return "; ".join(f"{key}={type(value).__name__}" for key, value in sorted(decisions.items()))


def _asking_agent(
    make: MakeAgent, asker: Asker, strategy: str, *more: object
) -> tuple[Agent, FakeTools, ScriptedModel]:
    tools = FakeTools(asker.ask, add, strategy=strategy)
    model = ScriptedModel([[tool_call("ask"), tool_call("add", a=1, b=2)], text("done")])
    return make(model, tools, *more), tools, model


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
async def test_a_tool_suspends_its_run_until_its_requests_are_decided(make_agent: MakeAgent, strategy: str) -> None:
    journal = CodecJournal()  # every entry goes through the codec: Waiting round-trips
    use = make_plugin("journal", agent_register_runtime=lambda runtime: runtime.set_journal(journal))
    asker, recorder = Asker(), RunRecorder()
    agent, tools, model = _asking_agent(make_agent, asker, strategy, use, recorder)

    outcome = await agent.run("go", run_id="asks")
    assert outcome.reason == "suspended"
    assert [(r.id, r.tool, r.call.arguments["path"], r.plugin) for r in outcome.pending] == [
        ("asks:1:call_1_1/1", "rm", "/tmp/1", "child")
    ]
    assert [i.name for i in tools.finished] == ["add"], "the step's other call ran; `ask` has no result yet"
    entries = await journal.load("asks")
    waiting = [e for e in entries if isinstance(e, Waiting)]
    assert [(w.step, w.call_id, [r.id for r in w.requests]) for w in waiting] == [
        (1, "call_1_1", ["asks:1:call_1_1/1"])
    ]
    assert not any(isinstance(e, ToolDone) and e.call_id == "call_1_1" for e in entries)

    again = await agent.resume("asks")  # no decision: still waiting, the tool is not called
    assert again.reason == "suspended" and [r.id for r in again.pending] == ["asks:1:call_1_1/1"]
    assert len(asker.seen) == 1

    with pytest.raises(UnknownRequest):
        await agent.resume("asks", decisions={"asks:1:call_1_1/2": Approve()})
    done = await agent.resume("asks", decisions={"asks:1:call_1_1/1": Deny("not that one")})
    assert (done.reason, done.output) == ("completed", "done")
    assert asker.seen == [{}, {"asks:1:call_1_1/1": Deny("not that one")}], "called again, with the decision"
    results = {m.tool_call_id: m.content for m in done.state.messages if m.role == "tool"}
    assert results == {"call_1_1": "asks:1:call_1_1/1=Deny", "call_1_2": "3"}
    assert done.stats.tool_calls == 2 and len(model.requests) == 2, "the suspended call counts once"
    assert [i.name for i in tools.finished] == ["add", "ask"], "nothing ran twice but the call that suspended"

    replayed = await make_agent(ScriptedModel([]), FakeTools(asker.ask, add), use).resume("asks")
    assert (replayed.reason, replayed.output) == ("completed", "done")
    assert len(asker.seen) == 2, "a finished run resumed again calls nothing"
    check_phase_grammar(recorder.phases)


async def test_a_tool_may_suspend_again_and_decisions_are_applied_once(make_agent: MakeAgent) -> None:
    asker = Asker(rounds=2)
    agent, _, _ = _asking_agent(make_agent, asker, "sequential")
    first = await agent.run("go", run_id="twice")
    second = await agent.resume("twice", decisions={"twice:1:call_1_1/1": Approve()})
    assert second.reason == "suspended" and [r.id for r in second.pending] == ["twice:1:call_1_1/2"]
    assert first.pending[0].id not in {r.id for r in second.pending}
    late = await agent.resume("twice", decisions={"twice:1:call_1_1/1": Approve(), "twice:1:call_1_1/2": Approve()})
    assert late.reason == "completed"
    assert asker.seen == [{}, {"twice:1:call_1_1/1": Approve()}, {"twice:1:call_1_1/2": Approve()}], (
        "each call gets the decisions of its own last suspension; one delivered twice is applied once"
    )


async def test_an_approver_decides_a_tools_requests_without_suspending(make_agent: MakeAgent) -> None:
    async def approver(request: Any, state: Any) -> Approve | None:
        return Approve() if request.tool == "rm" else None

    asker = Asker()
    inline = make_plugin("inline", agent_register_runtime=lambda runtime: runtime.add_approver(approver))
    agent, _, _ = _asking_agent(make_agent, asker, "concurrent", inline)
    outcome = await agent.run("go")
    assert outcome.reason == "completed" and asker.seen[1] == {f"{outcome.run_id}:1:call_1_1/1": Approve()}


async def test_a_tool_suspending_with_a_used_request_id_gets_an_error_result(make_agent: MakeAgent) -> None:
    def stubborn(tool_context: Any) -> str:
        request = ApprovalRequest("same-id", ToolCall("c", "rm", {}), "rm", "again", 1)
        raise ToolSuspended([request, request] if tool_context.step == 1 else [request])

    model = ScriptedModel([tool_call("stubborn"), text("done")])
    outcome = await make_agent(model, FakeTools(stubborn)).run("go")
    assert outcome.reason == "completed"
    (result,) = [m for m in outcome.state.messages if m.role == "tool"]
    assert result.is_error and "not new: same-id" in result.content


def test_tool_suspended_needs_a_request() -> None:
    with pytest.raises(ValueError, match="at least one ApprovalRequest"):
        ToolSuspended([])


@pytest.mark.parametrize("winner", [patches.Block("blocked by policy"), patches.ProvideResult("from cache")])
async def test_block_and_provide_result_win_over_suspend_without_a_dangling_approval(
    make_agent: MakeAgent, winner: patches.Patch
) -> None:
    """patches.py: Block and ProvideResult win over Suspend (whatever the plugin order)."""
    tools = FakeTools(add)
    answer = make_plugin("answer", agent_before_tool_execute=lambda: [winner])
    outcome = await make_agent(ScriptedModel(add_script("ok")), tools, Gate("add"), answer).run("go", run_id="win")
    assert outcome.reason == "completed", (
        f"the call was answered, nothing is left to approve: pending={outcome.pending}"
    )
    assert tools.count() == 0
    tool_message = outcome.state.messages[2]
    assert tool_message.content == (winner.reason if isinstance(winner, patches.Block) else winner.content)


# ===================================================================================== stop, context, tools


async def test_stop_patch_ends_the_run_stopped_with_code_and_detail(
    make_agent: MakeAgent, recorder: RunRecorder
) -> None:
    stopper = make_plugin("stopper", agent_after_tool_execute=lambda: [patches.Stop("budget", "spent 5 cents")])
    tools = FakeTools(add)
    model = ScriptedModel([[tool_call("add", a=1, b=1), tool_call("add", a=2, b=2)], text("never")])
    outcome = await make_agent(model, tools, stopper).run("go")
    assert outcome.reason == "stopped" and outcome.stop is not None
    assert (outcome.stop.code, outcome.stop.detail) == ("budget", "spent 5 cents")
    assert tools.count() == 1 and len(model.requests) == 1, "nothing further starts after a Stop"
    assert recorder.phases[-2:] == ["step_end", "run_end"]


async def test_inject_context_reaches_only_that_inference(make_agent: MakeAgent) -> None:
    injector = make_plugin(
        "injector",
        agent_run_start=lambda: [patches.InjectContext("from run_start")],
        agent_step_start=lambda ctx: [patches.InjectContext(f"step {ctx.step}")],
        agent_step_end=lambda ctx: [patches.InjectContext(f"after step {ctx.step}")],
    )
    model = ScriptedModel([tool_call("add", a=1, b=1), tool_call("add", a=2, b=2), text("done")])
    await make_agent(model, FakeTools(add), injector).run("go")
    systems = [[m.content for m in r.messages if m.role == "system"] for r in model.requests]
    assert systems == [
        ["from run_start", "step 1"],
        ["after step 1", "step 2"],
        ["after step 2", "step 3"],
    ]
    assert all(m.role != "system" for m in model.requests[-1].messages[len(systems[-1]) :])


async def test_exclude_and_only_tools_change_request_tools(make_agent: MakeAgent) -> None:
    def mul(a: int = 0, b: int = 0) -> int:
        return a * b

    def sub(a: int = 0, b: int = 0) -> int:
        return a - b

    def shape(ctx: Context) -> list[patches.Patch] | None:
        if ctx.step == 2:
            return [patches.ExcludeTools({"sub"})]
        if ctx.step == 3:
            return [patches.OnlyTools({"mul", "sub"})]
        if ctx.step == 4:
            return [patches.OnlyTools(set())]
        return None

    model = ScriptedModel([tool_call("add"), tool_call("add"), tool_call("mul"), tool_call("add"), text("done")])
    outcome = await make_agent(model, FakeTools(add, mul, sub), make_plugin("shaper", agent_step_start=shape)).run("go")
    assert [[t.name for t in r.tools] for r in model.requests] == [
        ["add", "mul", "sub"],
        ["add", "mul"],
        ["mul"],
        [],
        [],
    ]
    assert outcome.state.excluded_tools == {"sub"} and outcome.state.only_tools == frozenset()


async def test_unknown_tool_and_tool_exception_become_error_results(make_agent: MakeAgent) -> None:
    def explode() -> str:
        raise RuntimeError("kaboom")

    model = ScriptedModel([[tool_call("nope", x=1), tool_call("explode")], text("recovered")])
    outcome = await make_agent(model, FakeTools(add, explode)).run("go")
    assert (outcome.reason, outcome.output) == ("completed", "recovered")
    results = [(m.content, m.is_error) for m in model.requests[1].messages if m.role == "tool"]
    assert results[0][1] and "nope" in results[0][0] and "add" in results[0][0], (
        "unknown tool: the model sees the names"
    )
    assert results[1][1] and "kaboom" in results[1][0]


# ===================================================================================== interrupted tool intents


@pytest.mark.parametrize("idempotent", [True, False])
async def test_resume_of_an_interrupted_tool_intent(
    make_agent: MakeAgent, autojump_clock: Any, idempotent: bool
) -> None:
    keys: list[str] = []

    async def charge(amount: int, tool_context: Any) -> str:
        keys.append(tool_context.idempotency_key)
        if len(keys) == 1:
            await trio.sleep(3600)  # the first process dies (times out) in the middle of the call
        return f"charged {amount}"

    journal = MemoryJournal()
    shared = make_plugin("shared-journal", agent_register_runtime=lambda runtime: runtime.set_journal(journal))

    def build() -> tuple[Agent, ScriptedModel, FakeTools]:
        model = ScriptedModel([tool_call("charge", amount=5), text("done")])
        tools = FakeTools(charge, idempotent=["charge"] if idempotent else [])
        return make_agent(model, tools, shared), model, tools

    first, _, _ = build()
    outcome = await first.run("pay", run_id="pay", timeout=10)
    assert outcome.reason == "cancelled" and outcome.error is not None and outcome.error.type == "TimeoutError"
    entries = await journal.load("pay")
    assert any(isinstance(e, Intended) for e in entries) and not any(isinstance(e, ToolDone) for e in entries)

    second, model, tools = build()  # a new process, same journal
    resumed = await second.resume("pay")
    assert resumed.reason == "completed"
    assert len(model.requests) == 1, "the recorded response is not requested again"
    tool_message = resumed.state.messages[2]
    if idempotent:
        assert keys == ["pay:1:call_1_1", "pay:1:call_1_1"], "re-run with the same idempotency key"
        assert (tool_message.content, tool_message.is_error) == ("charged 5", False)
    else:
        assert len(keys) == 1 and tools.count() == 0, "a non-idempotent tool is not run again"
        assert tool_message.is_error and "unknown" in tool_message.content.lower()


async def test_stale_worker_cannot_commit_after_a_newer_attempt_and_still_reaches_run_end(
    make_agent: MakeAgent,
) -> None:
    """DESIGN §5.6 fencing; §5.2: every invocation, the stale one too, ends with exactly one RunEnd."""
    journal = MemoryJournal()
    shared = make_plugin("shared-journal", agent_register_runtime=lambda runtime: runtime.set_journal(journal))
    started, release = anyio.Event(), anyio.Event()

    async def slow() -> str:
        started.set()
        await release.wait()
        return "too late"

    async def fast() -> str:
        return "fast"

    fast.__name__ = "slow"
    stale_recorder = RunRecorder()
    stale = make_agent(ScriptedModel([tool_call("slow"), text("stale done")]), FakeTools(slow), shared, stale_recorder)
    fresh = make_agent(ScriptedModel([tool_call("slow"), text("fresh done")]), FakeTools(fast), shared)
    results: dict[str, Any] = {}

    async def run_stale() -> None:
        try:
            results["stale"] = await stale.run("go", run_id="fenced")
        except Exception as exc:  # the kernel may raise StaleAttempt or return an error outcome
            results["stale"] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_stale)
        await started.wait()
        results["fresh"] = await fresh.resume("fenced")  # a newer attempt takes the run over
        release.set()

    assert results["fresh"].reason == "completed" and results["fresh"].output == "fresh done"
    stale_result = results["stale"]
    assert isinstance(stale_result, StaleAttempt) or (
        stale_result.reason == "error" and stale_result.error.type == "StaleAttempt"
    ), stale_result
    entries = await journal.load("fenced")
    second_start = next(i for i, e in enumerate(entries) if isinstance(e, Started) and e.attempt == 2)
    assert [e for e in entries[second_start:] if isinstance(e, Started)] == [entries[second_start]]
    assert not any(isinstance(e, ToolDone) and e.result.content == "too late" for e in entries), (
        "the stale worker wrote"
    )
    assert isinstance(entries[-1], Ended) and entries[-1].reason == "completed"
    assert stale_recorder.phases.count("run_start") == 1
    assert stale_recorder.phases.count("run_end") == 1, (
        f"the stale invocation never reached run_end: {stale_recorder.phases}"
    )


async def test_async_observer_is_refused_at_load_time_or_awaited(make_agent: MakeAgent) -> None:
    """`agent_on_event` is not a phase hook: an ``async def`` one must not be silently dropped."""
    seen: list[ev.Event] = []

    class AsyncObserver:
        name = "async-observer"

        @hookimpl
        async def agent_on_event(self, event: ev.Event) -> None:
            seen.append(event)

    with pytest.raises(PluginLoadError, match=r"'async-observer': agent_on_event is an async def"):
        make_agent(ScriptedModel([text("hi")]), AsyncObserver())


async def test_async_decision_hook_is_refused_at_load_time_or_awaited(make_agent: MakeAgent) -> None:
    """A firstresult decision hook written ``async def`` must not be silently treated as "no decision"."""

    class AsyncDecider:
        name = "async-decider"

        @hookimpl
        async def agent_on_inference_error(self, attempt: int) -> Retry:
            return Retry(0)

    with pytest.raises(PluginLoadError, match=r"'async-decider': agent_on_inference_error is an async def"):
        make_agent(ScriptedModel([fault("flaky"), text("recovered")]), AsyncDecider())


class _FailingJournal(MemoryJournal):
    """Refuses the append that would write its `fail_at`-th entry (an I/O error, say)."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at, self.attempted = fail_at, 0

    async def append(self, run_id: str, attempt: int, entries: Any, *, at: int) -> None:
        self.attempted += 1
        if self.attempted == self.fail_at:
            raise OSError("disk full")
        await super().append(run_id, attempt, entries, at=at)


@pytest.mark.parametrize("fail_at", [2, 3, 4])
async def test_a_failed_append_ends_the_invocation_without_a_gap_and_resume_finishes(
    make_agent: MakeAgent, recorder: RunRecorder, fail_at: int
) -> None:
    journal = _FailingJournal(fail_at)
    use = make_plugin("failing-journal", agent_register_runtime=lambda runtime: runtime.set_journal(journal))
    tools = FakeTools(add)
    agent = make_agent(ScriptedModel(add_script()), tools, use)
    outcome = await agent.run("2+3", run_id="disk")
    assert outcome.reason == "error" and outcome.error is not None
    assert (outcome.error.type, outcome.error.message) == (
        "JournalAppendFailed",
        "journal _FailingJournal: OSError: disk full",
    )
    assert recorder.phases.count("run_end") == 1, "RunEnd still fires"
    kept = await journal.load("disk")
    assert not any(isinstance(e, Ended) for e in kept), "nothing is written after the failed append"
    again = await agent.resume("disk")
    assert (again.reason, again.output) == ("completed", "It is 5")
    assert tools.count() == 1, "the tool ran once: no side effect followed the failed append"


async def _leave_stream_early(make: MakeAgent) -> None:
    recorder = RunRecorder()

    async def slow() -> str:
        await anyio.sleep(3600)
        return "never"

    agent = make(ScriptedModel([tool_call("slow"), text("done")]), FakeTools(slow), recorder)
    async with agent.stream("go", run_id="left") as events:
        async for event in events:
            if isinstance(event, ev.ToolCallStarted):
                break
    assert events.outcome is None
    entries = await agent.journal.load("left")
    assert isinstance(entries[-1], Ended) and entries[-1].reason == "cancelled"
    assert recorder.phases.count("run_end") == 1
    outcome = await agent.resume("left")
    assert (outcome.reason, outcome.output) == ("completed", "done")
    check_phase_grammar(recorder.calls)


def test_leaving_a_stream_early_cancels_the_run_which_stays_resumable(run_async: Any) -> None:
    run_async(_leave_stream_early, plain_agent)


async def test_no_tool_task_outlives_a_cancelled_run(make_agent: MakeAgent, autojump_clock: Any) -> None:
    """DESIGN §5.7: cancellation is the run's cancel scope; concurrent tool calls end with it."""
    running: set[int] = set()
    started: list[int] = []

    async def wait(i: int) -> str:
        running.add(i)
        started.append(i)
        try:
            await trio.sleep(3600)
        finally:
            running.discard(i)
        return "never"

    model = ScriptedModel([[tool_call("wait", i=i) for i in range(4)], text("done")])
    outcome = await make_agent(model, FakeTools(wait, strategy="concurrent")).run("go", timeout=5)
    assert outcome.reason == "cancelled"
    assert sorted(started) == [0, 1, 2, 3], "the calls ran concurrently"
    assert running == set(), f"tool calls still running after the run returned: {running}"


@pytest.mark.parametrize("mistake", ["run-with-a-taken-id", "resume-with-an-unknown-request"])
async def test_a_refused_call_does_not_fence_out_the_live_run(make_agent: MakeAgent, mistake: str) -> None:
    """A call that is refused with an exception must not claim the run (and so kill its live invocation)."""
    started, release = anyio.Event(), anyio.Event()

    async def slow() -> str:
        started.set()
        await release.wait()
        return "slow result"

    agent = make_agent(ScriptedModel([tool_call("slow"), text("done")]), FakeTools(slow))
    results: dict[str, Any] = {}

    async def live() -> None:
        try:
            results["live"] = await agent.run("go", run_id="live")
        except Exception as exc:
            results["live"] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(live)
        await started.wait()
        with pytest.raises((AgentError, UnknownRequest)):
            if mistake == "run-with-a-taken-id":
                await agent.run("again", run_id="live")
            else:
                await agent.resume("live", decisions={"bogus": Approve()})
        release.set()
    outcome = results["live"]
    assert not isinstance(outcome, Exception), f"the live run was fenced out by a refused call: {outcome!r}"
    assert (outcome.reason, outcome.output) == ("completed", "done")


async def test_stream_raises_the_same_errors_as_run_and_resume(make_agent: MakeAgent) -> None:
    """`stream` is `run`/`resume` with events: UnknownRun must not arrive wrapped in an ExceptionGroup."""
    agent = make_agent(ScriptedModel([text("hi")]))
    with pytest.raises(UnknownRun):
        await agent.resume("nope")
    with pytest.raises(UnknownRun):
        async with agent.stream(run_id="nope", resume=True) as events:
            async for _ in events:
                pass


def test_an_error_in_the_stream_block_is_raised_as_itself(make_agent: MakeAgent, run_async: Any) -> None:
    """The caller's own exception leaves `async with agent.stream()` unwrapped, under trio and asyncio;
    the run it left is cancelled (and stays resumable)."""
    agent = make_agent(ScriptedModel([text("a few words")]))

    async def leave_with_an_error() -> None:
        async with agent.stream("hi", run_id="left") as events:
            async for _ in events:
                raise KeyError("the caller's")

    with pytest.raises(KeyError, match="the caller's"):
        run_async(leave_with_an_error)
    assert run_async(agent.resume, "left").reason == "completed"


async def test_a_fenced_stream_raises_stale_attempt_as_itself(make_agent: MakeAgent) -> None:
    """`stream` raises what `run` raises: StaleAttempt, not an ExceptionGroup holding it."""
    journal = MemoryJournal()
    shared = make_plugin("shared-journal", agent_register_runtime=lambda runtime: runtime.set_journal(journal))
    started, release = anyio.Event(), anyio.Event()

    async def slow() -> str:
        started.set()
        await release.wait()
        return "too late"

    stale = make_agent(ScriptedModel([tool_call("slow"), text("stale")]), FakeTools(slow), shared)
    fresh = make_agent(ScriptedModel([tool_call("slow"), text("fresh")]), FakeTools(slow), shared)
    raised: list[BaseException] = []

    async def stream_stale() -> None:
        try:
            async with stale.stream("go", run_id="fenced-stream") as events:
                async for _ in events:
                    pass
        except BaseException as exc:
            raised.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(stream_stale)
        await started.wait()
        async with anyio.create_task_group() as inner:
            inner.start_soon(fresh.resume, "fenced-stream")
            await anyio.sleep(0.01)
            release.set()
    assert len(raised) == 1 and isinstance(raised[0], StaleAttempt), raised
