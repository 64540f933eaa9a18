"""The ``agent-kernel`` command: a thin layer over the public API.

Exit codes: 0 completed, 1 error, 2 usage or configuration error, 3 stopped,
4 suspended, 5 cancelled (Ctrl-C included: the run stays resumable).
Plugins add subcommands through ``agent_register_commands``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.abc
import attrs

from . import events as ev
from ._agent import DEFAULT_MAX_STEPS, Agent
from ._console import Console, EventPrinter, Spinner, call_text, json_line
from ._outcome import Outcome
from ._plugins import load_plugins
from ._registry import CommandRegistrar, register
from ._state import ApprovalRequest, Approve, Decision, Deny
from .config import Config, ConfigError, _where, import_object, load_config, parse_assignment, redact_headers, to_toml
from .errors import AgentError
from .journal import MemoryJournal

EXIT = {"completed": 0, "error": 1, "stopped": 3, "suspended": 4, "cancelled": 5}
USAGE = 2


def cmd_plugins(args: argparse.Namespace) -> int:
    """List the plugins; a broken installed plugin is listed with its ``error`` (exit 1 only with --strict)."""
    _, infos = load_plugins(autoload=True, block=args.block, skip_broken=True)
    rows: list[dict[str, Any]] = []
    for i in infos.values():
        if i.error is not None:
            print(f"agent-kernel: plugin {i.name!r} is broken: {i.error}", file=sys.stderr)
            if args.hook is None:
                rows.append({"name": i.name, "distribution": i.distribution, "version": i.version, "error": i.error})
        elif args.hook is None or args.hook in i.hooks:
            rows.append({"name": i.name, "distribution": i.distribution, "version": i.version, "hooks": list(i.hooks)})
    print(json.dumps(rows, indent=2))
    return EXIT["error"] if args.strict and any(i.error is not None for i in infos.values()) else 0


# ---------------------------------------------------------------------- configuration


def _config(args: argparse.Namespace) -> Config:
    """The configuration layers, with this command's options as the last one."""
    overrides: dict[str, Any] = dict(parse_assignment(item) for item in args.set)
    for option, key in (
        ("model", "agent.model"),
        ("instructions", "agent.instructions"),
        ("journal", "plugins.sqlite.path"),
        ("thread", "agent.thread"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            overrides[key] = value
    max_steps = getattr(args, "max_steps", None)
    if max_steps is not None:
        overrides["agent.max_steps"] = int(max_steps) if max_steps.strip().isdigit() else max_steps
    config = load_config(args.config, overrides=overrides, user=not args.no_user_config)
    if args.block:
        config = attrs.evolve(config, agent=attrs.evolve(config.agent, block=(*config.agent.block, *args.block)))
    return config


def _agent(args: argparse.Namespace) -> Agent:
    config = _config(args)
    if args.command == "run" and not config.agent.model:
        raise ConfigError("no model: pass --model MODEL or set model in the [agent] table of agent.toml")
    extra = [import_object(spec, f"--plugin {spec}") for spec in args.plugin]
    return config.make_agent(extra)


def cmd_config_check(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
        agent = config.make_agent()  # builds every plugin: their own checks run too
        model = config.agent.model
        problem = agent.unknown_model(model) if model else None
        if problem is not None:
            raise ConfigError(f"{_where(config.origins, ('agent', 'model'))}: {problem}")
    except AgentError as exc:
        if not args.json:
            raise
        kind = "configuration" if isinstance(exc, ConfigError) else type(exc).__name__
        print(json.dumps({"ok": False, "error": kind, "problems": str(exc).splitlines()}, indent=2))
        return USAGE
    secrets = config.secret_variables()
    shown = redact_headers(config.as_dict())  # a header value may carry a credential: never printed
    if args.json:
        data = {"ok": True, "files": list(config.files), "plugins": sorted(agent.plugins), "secrets": secrets}
        print(json.dumps({**data, "config": shown}, indent=2))
        return 0
    print(f"# files read: {', '.join(config.files) or 'none'}")
    print(f"# plugins loaded: {', '.join(sorted(agent.plugins)) or 'none'}")
    for name, is_set in secrets.items():
        print(f"# ${name}: {'set' if is_set else 'NOT SET'}")
    print(to_toml(shown), end="")
    return 0


def resume_command(args: argparse.Namespace, run_id: str) -> str:
    """The shell command that resumes `run_id` with the configuration this command used."""
    words = ["agent-kernel", "resume", run_id]
    if args.config is not None:
        words += ["-c", args.config]
    if args.no_user_config:
        words.append("--no-user-config")
    for flag, values in (("--set", args.set), ("--block", args.block), ("-p", args.plugin)):
        for value in values:
            words += [flag, value]
    for flag, value in (
        ("-m", args.model),
        ("--journal", args.journal),
        ("--max-steps", args.max_steps),
        ("--thread", args.thread),
    ):
        if value is not None:
            words += [flag, value]
    return shlex.join(words)


# ---------------------------------------------------------------------- run and resume


class _Session:
    """One `run` or `resume` command: streams events, asks for approvals, reports."""

    def __init__(self, agent: Agent, args: argparse.Namespace) -> None:
        self.agent = agent
        self.args = args
        self.printer = EventPrinter(Console(sys.stdout), Console(sys.stderr), indent="")
        self.interactive = not args.json and not args.no_input and sys.stdin.isatty()
        # "waiting for <model>…" until the answer starts: on a terminal only, never in --json
        self.spinner = Spinner(sys.stderr) if not args.json and sys.stderr.isatty() else None

    async def stream(self, **kwargs: Any) -> Outcome | None:
        """Run one invocation; None when Ctrl-C cancelled it (it is journaled as cancelled)."""
        interrupted = False
        outcome = None
        async with anyio.create_task_group() as tg:

            async def on_sigint(*, task_status: anyio.abc.TaskStatus[None]) -> None:
                nonlocal interrupted
                with anyio.open_signal_receiver(signal.SIGINT) as signals:
                    task_status.started()
                    async for _ in signals:
                        interrupted = True
                        tg.cancel_scope.cancel()

            await tg.start(on_sigint)
            if self.spinner is not None:
                tg.start_soon(self.spinner.animate)
            try:
                async with self.agent.stream(**kwargs) as events:
                    async for event in events:
                        self.show(event)
                outcome = events.outcome
            finally:
                if self.spinner is not None:
                    self.spinner.clear()
            tg.cancel_scope.cancel()
        return None if interrupted else outcome

    def show(self, event: ev.Event) -> None:
        if self.args.json:
            print(json_line(type(event).__name__, self.agent.converter.unstructure(event)), flush=True)
            return
        if self.spinner is not None:
            self.spinner.clear()
            if isinstance(event, ev.InferenceStarted) and not self.printer.mid_line:
                self.spinner.show(f"waiting for {event.model}…")
        self.printer.show(event)

    def ask(self, request: ApprovalRequest) -> Decision:
        """Ask the operator about one pending request on the terminal."""
        self.printer.end_text()
        call = call_text(request.tool, request.call.arguments)
        answer = input(f"  approve {call}? [y]es / [n]o / or type a reason to deny: ").strip()
        if answer.lower() in ("y", "yes"):
            return Approve()
        return Deny(answer if answer.lower() not in ("", "n", "no") else "denied by the operator")

    async def drive(self, run_id: str, **kwargs: Any) -> int:
        outcome = await self.stream(run_id=run_id, **kwargs)
        while outcome is not None and outcome.reason == "suspended" and self.interactive:
            try:
                decisions = {request.id: self.ask(request) for request in outcome.pending}
            except (KeyboardInterrupt, EOFError):
                break
            outcome = await self.stream(run_id=run_id, resume=True, decisions=decisions)
        return self.report(run_id, outcome)

    def report(self, run_id: str, outcome: Outcome | None) -> int:
        self.printer.end_text()
        resume = resume_command(self.args, run_id)
        if outcome is None:
            if self.args.json:
                # the stream always ends with its outcome, an interrupted one too
                cancelled: dict[str, Any] = {
                    "run_id": run_id,
                    "reason": "cancelled",
                    "output": "",
                    "pending": [],
                    "stop": None,
                }
                interrupted = {"message": "interrupted (Ctrl-C)", "plugin": "", "hook": "", "type": "KeyboardInterrupt"}
                print(json_line("Outcome", {**cancelled, "error": interrupted, "resume": resume}), flush=True)
            else:
                self.printer.status(f"[cancelled] run {run_id}: interrupted; continue with: {resume}", "yellow")
            return EXIT["cancelled"]
        if self.args.json:
            data: dict[str, Any] = {
                "run_id": outcome.run_id,
                "reason": outcome.reason,
                "output": outcome.output,
                "pending": [{"id": r.id, "tool": r.tool, "reason": r.reason} for r in outcome.pending],
                "stop": attrs.asdict(outcome.stop) if outcome.stop else None,
                "error": attrs.asdict(outcome.error) if outcome.error else None,
            }
            if outcome.reason in ("cancelled", "error", "suspended"):
                data["resume"] = resume
            print(json_line("Outcome", data), flush=True)
            return EXIT[outcome.reason]
        line = f"[{outcome.reason}] run {outcome.run_id}"
        if outcome.error:
            error = outcome.error
            line += f": {f'{error.plugin}.{error.hook}' if error.plugin else 'kernel'}: {error.message}"
        if outcome.stop:
            line += f": {outcome.stop.code} {outcome.stop.detail}"
        style = {"completed": "green", "error": "red"}.get(outcome.reason, "yellow")
        self.printer.status(line, style)
        stats = outcome.stats
        self.printer.status(
            f"  steps {stats.steps} · model calls {stats.llm_calls} · tool calls {stats.tool_calls} · "
            f"tokens {outcome.usage.total_tokens} · {stats.duration:.2f} s",
            "dim",
        )
        for request in outcome.pending:
            self.printer.status(f"  pending {request.id}: {call_text(request.tool, request.call.arguments)}")
        if outcome.pending:
            first = shlex.quote(outcome.pending[0].id)
            self.printer.status(f"  approve with: {resume} --approve {first}")
            self.printer.status(f"  or deny with: {resume} --deny {first} --reason '...'")
        elif outcome.reason in ("error", "cancelled"):
            self.printer.status(f"  continue with: {resume}")
        if outcome.reason in ("error", "cancelled", "suspended") and isinstance(self.agent.journal, MemoryJournal):
            self.printer.status(
                "  note: the journal is in memory, so this run ends with the process; "
                "use --journal runs.db or [plugins.sqlite] path to resume it later",
                "dim",
            )
        return EXIT[outcome.reason]


def cmd_run(args: argparse.Namespace) -> int:
    session = _Session(_agent(args), args)
    run_id = args.run_id or uuid.uuid4().hex
    return anyio.run(lambda: session.drive(run_id, input=args.prompt), backend="trio")


def cmd_resume(args: argparse.Namespace) -> int:
    session = _Session(_agent(args), args)
    decisions: dict[str, Decision] = {rid: Approve() for rid in args.approve}
    decisions.update({rid: Deny(args.reason) for rid in args.deny})
    return anyio.run(lambda: session.drive(args.run_id, resume=True, decisions=decisions), backend="trio")


# ---------------------------------------------------------------------- the parser


def _config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="PATH", help="the project configuration file (default ./agent.toml)")
    p.add_argument("--no-user-config", action="store_true", help="do not read the user configuration file")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="set a key, e.g. plugins.limits.max_steps=20"
    )
    p.add_argument("--block", action="append", default=[], metavar="NAME", help="skip the plugin NAME")
    p.add_argument("--journal", metavar="PATH", help="keep runs in this SQLite file (plugins.sqlite.path)")


BUILTIN_COMMANDS = frozenset({"plugins", "run", "resume", "config"})


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in `argv` (its first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(*, plugin_commands: bool = True) -> tuple[argparse.ArgumentParser, CommandRegistrar]:
    """The ``agent-kernel`` parser; with `plugin_commands`, the installed plugins' commands too.

    Loading the plugins imports every installed plugin, so `main` does it only for a
    command that is not built in (``agent-kernel --help`` and ``run --help`` stay fast).
    """
    parser = argparse.ArgumentParser(
        prog="agent-kernel",
        description="A plugin-first micro-kernel for LLM agent loops.",
        epilog="exit codes: 0 completed, 1 error, 2 usage or configuration error, 3 stopped, 4 suspended, 5 cancelled",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plugins", help="list loaded plugins as JSON")
    p.add_argument("--block", action="append", default=[], metavar="NAME", help="skip the plugin NAME")
    p.add_argument("--hook", help="only plugins implementing this hook")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if an installed plugin is broken (it is listed with its error either way)",
    )
    p.set_defaults(func=cmd_plugins)

    for name, func, help_text in (("run", cmd_run, "run an agent"), ("resume", cmd_resume, "resume a run")):
        p = sub.add_parser(name, help=help_text)
        _config_options(p)
        p.add_argument("--model", "-m", help="model string, e.g. openai:gpt-4o-mini (agent.model)")
        p.add_argument("--plugin", "-p", action="append", default=[], metavar="MODULE[:ATTR]", help="add a plugin")
        p.add_argument("--json", action="store_true", help="print events as JSON lines, then the outcome")
        p.add_argument("--no-input", action="store_true", help="never ask for approval: leave the run suspended")
        p.add_argument(
            "--max-steps",
            metavar="N",
            help=f"the most steps of the run (agent.max_steps, default {DEFAULT_MAX_STEPS}); 0 or none: no limit",
        )
        p.add_argument(
            "--thread",
            metavar="NAME",
            help="continue this thread of the memory plugin, created if new (agent.thread; needs --journal)",
        )
        if name == "run":
            p.add_argument("prompt")
            p.add_argument("--run-id", help="the run's id (default: a new one)")
            p.add_argument("--instructions", help="the system message (agent.instructions)")
        else:
            p.add_argument("run_id")
            p.add_argument("--approve", action="append", default=[], metavar="REQUEST_ID")
            p.add_argument("--deny", action="append", default=[], metavar="REQUEST_ID")
            p.add_argument("--reason", default="denied by the operator", help="why the requests are denied")
        p.set_defaults(func=func)

    p = sub.add_parser("config", help="check the configuration")
    config_sub = p.add_subparsers(dest="config_command", required=True)
    p = config_sub.add_parser("check", help="print the merged configuration (no secrets), or what is wrong")
    _config_options(p)
    p.add_argument("--json", action="store_true", help="print it as JSON")
    p.set_defaults(func=cmd_config_check)

    if not plugin_commands:
        parser.epilog = f"{parser.epilog}; installed plugins add more commands (e.g. demo, threads, jobs)"
        return parser, CommandRegistrar()
    pm, _ = load_plugins(autoload=True)
    registrar = CommandRegistrar()
    register(pm.hook.agent_register_commands, registrar)
    for name, registered in registrar.commands.items():
        configure, run, help_text = registered.item
        p = sub.add_parser(name, help=help_text)
        configure(p)
        p.set_defaults(func=run)
    return parser, registrar


def _exit_code(exc: BaseException) -> int | None:
    """The exit code for an error the CLI explains (unwrapping single-error groups), else None."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, ConfigError):
        print(f"agent-kernel: configuration error:\n{exc}", file=sys.stderr)
        return USAGE
    if isinstance(exc, AgentError):
        print(f"agent-kernel: error: {exc}", file=sys.stderr)
        return EXIT["error"]
    if isinstance(exc, KeyboardInterrupt):
        print("\nagent-kernel: interrupted", file=sys.stderr)
        return EXIT["cancelled"]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        command = _command_of(argv)
        parser, _ = build_parser(plugin_commands=command is not None and command not in BUILTIN_COMMANDS)
        args = parser.parse_args(argv)
        return int(args.func(args))
    except (AgentError, KeyboardInterrupt, BaseExceptionGroup) as exc:
        code = _exit_code(exc)
        if code is None:
            raise
        return code


if __name__ == "__main__":
    sys.exit(main())
