"""The ``agent-kernel`` command: a thin layer over the public API.

Exit codes: 0 completed, 1 error, 2 usage error, 3 stopped, 4 suspended, 5 cancelled.
Plugins add subcommands through ``agent_register_commands``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

import anyio

from . import events as ev
from ._agent import Agent
from ._outcome import Outcome
from ._plugins import impl_owners, load_plugins
from ._registry import CommandRegistrar
from ._state import Approve, Decision, Deny
from .errors import AgentError

EXIT = {"completed": 0, "error": 1, "stopped": 3, "suspended": 4, "cancelled": 5}


def _load_object(spec: str) -> object:
    """Import ``module:attribute`` (or a module) given on the command line."""
    module_name, _, attribute = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in filter(None, attribute.split(".")):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise AgentError(f"--plugin {spec!r}: cannot import it ({exc})") from exc
    return obj() if isinstance(obj, type) else obj


def cmd_plugins(args: argparse.Namespace) -> int:
    _, infos = load_plugins(autoload=True, block=args.block)
    rows = [
        {"name": i.name, "distribution": i.distribution, "version": i.version, "hooks": list(i.hooks)}
        for i in infos.values()
        if args.hook is None or args.hook in i.hooks
    ]
    print(json.dumps(rows, indent=2))
    return 0


def _agent(args: argparse.Namespace) -> Agent:
    plugins = [_load_object(spec) for spec in args.plugin]
    return Agent(model=args.model, plugins=plugins, block=args.block, instructions=getattr(args, "instructions", None))


async def _stream(agent: Agent, args: argparse.Namespace, **kwargs: Any) -> Outcome:
    async with agent.stream(**kwargs) as events:
        async for event in events:
            if args.json:
                print(json.dumps({"type": type(event).__name__, **agent.converter.unstructure(event)}), flush=True)
            elif isinstance(event, ev.TextDelta):
                print(event.text, end="", flush=True)
            elif isinstance(event, ev.ToolCallStarted):
                print(f"\n  → {event.call.name}({json.dumps(dict(event.call.arguments))})", file=sys.stderr)
            elif isinstance(event, ev.ApprovalRequested):
                print(f"\n  ⏸ approval needed [{event.request.id}]: {event.request.reason}", file=sys.stderr)
    assert events.outcome is not None
    return events.outcome


def _report(outcome: Outcome, as_json: bool) -> int:
    if not as_json:
        print()
        line = f"[{outcome.reason}] run {outcome.run_id}"
        if outcome.error:
            line += f": {outcome.error.plugin or 'kernel'}.{outcome.error.hook or ''} {outcome.error.message}"
        if outcome.stop:
            line += f": {outcome.stop.code} {outcome.stop.detail}"
        for request in outcome.pending:
            line += f"\n  pending {request.id}: {request.tool} ({request.reason})"
        print(line, file=sys.stderr)
    return EXIT[outcome.reason]


def cmd_run(args: argparse.Namespace) -> int:
    agent = _agent(args)
    outcome = anyio.run(lambda: _stream(agent, args, input=args.prompt, run_id=args.run_id))
    return _report(outcome, args.json)


def cmd_resume(args: argparse.Namespace) -> int:
    agent = _agent(args)
    decisions: dict[str, Decision] = {rid: Approve() for rid in args.approve}
    decisions.update({rid: Deny(args.reason) for rid in args.deny})
    outcome = anyio.run(lambda: _stream(agent, args, run_id=args.run_id, resume=True, decisions=decisions))
    return _report(outcome, args.json)


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import main as demo

    return demo()


def build_parser() -> tuple[argparse.ArgumentParser, CommandRegistrar]:
    parser = argparse.ArgumentParser(
        prog="agent-kernel", description="A plugin-first micro-kernel for LLM agent loops."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--block", action="append", default=[], metavar="NAME", help="skip the plugin NAME")

    p = sub.add_parser("plugins", help="list loaded plugins as JSON")
    common(p)
    p.add_argument("--hook", help="only plugins implementing this hook")
    p.set_defaults(func=cmd_plugins)

    for name, func, help_text in (("run", cmd_run, "run an agent"), ("resume", cmd_resume, "resume a run")):
        p = sub.add_parser(name, help=help_text)
        common(p)
        p.add_argument("--model", "-m", required=name == "run", help="model string, e.g. openai:gpt-4o-mini")
        p.add_argument("--plugin", "-p", action="append", default=[], metavar="MODULE[:ATTR]", help="add a plugin")
        p.add_argument("--json", action="store_true", help="print events as JSON lines")
        if name == "run":
            p.add_argument("prompt")
            p.add_argument("--run-id")
            p.add_argument("--instructions")
        else:
            p.add_argument("run_id")
            p.add_argument("--approve", action="append", default=[], metavar="REQUEST_ID")
            p.add_argument("--deny", action="append", default=[], metavar="REQUEST_ID")
            p.add_argument("--reason", default="denied by the operator")
        p.set_defaults(func=func)

    p = sub.add_parser("demo", help="watch a scripted agent run (no network, no key)")
    p.set_defaults(func=cmd_demo)

    pm, _ = load_plugins(autoload=True)
    registrar = CommandRegistrar(impl_owners(pm))
    pm.hook.agent_register_commands(commands=registrar)
    for name, registered in registrar.commands.items():
        configure, run, help_text = registered.item
        p = sub.add_parser(name, help=help_text)
        configure(p)
        p.set_defaults(func=run)
    return parser, registrar


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser, _ = build_parser()
        args = parser.parse_args(argv)
        return int(args.func(args))
    except AgentError as exc:
        print(f"agent-kernel: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nagent-kernel: interrupted", file=sys.stderr)
        return EXIT["cancelled"]


if __name__ == "__main__":
    sys.exit(main())
