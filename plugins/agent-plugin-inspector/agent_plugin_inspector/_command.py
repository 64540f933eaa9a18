"""``agent-kernel serve``: the web inspector and approval inbox over a journal file."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from agent_kernel import Agent
from agent_kernel.config import ConfigError, import_object, load_config
from agent_kernel.errors import AgentError

from ._app import LOOPBACK_HOSTS, create_app
from ._source import SqliteSource

HELP = "serve the web inspector and approval inbox for a journal (runs, timelines, decisions, threads)"
DEFAULT_PORT = 8321


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agent-kernel serve``."""
    parser.description = (
        "Serve a web page over a journal: the runs, each run's timeline (live), an inbox of tool calls "
        "waiting for approval, and threads. Decisions resume runs in this process with the agent given by "
        "--agent, or built from the configuration (-c agent.toml, ./agent.toml, installed plugins) as "
        "'agent-kernel resume' does. Binds to 127.0.0.1 unless told otherwise; any other address needs --token-env."
    )
    parser.add_argument("--journal", metavar="PATH", help="the SQLite journal file (default: the agent's journal file)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--token-env",
        metavar="VAR",
        help="require the token in this environment variable on every request (mandatory off loopback)",
    )
    who = parser.add_mutually_exclusive_group()
    who.add_argument(
        "--agent", metavar="MODULE:FACTORY", help="a callable returning the Agent that resumes runs (or an Agent)"
    )
    who.add_argument("--config", "-c", metavar="PATH", help="build the agent from this agent.toml")
    who.add_argument("--read-only", action="store_true", help="no agent: show runs, take no decisions")
    parser.add_argument("--no-user-config", action="store_true", help="do not read the user configuration file")
    parser.add_argument("--block", action="append", default=[], metavar="NAME", help="skip the plugin NAME")


def _journal_path(agent: Agent) -> str | None:
    path = getattr(agent.journal, "path", None)
    return os.fspath(path) if isinstance(path, (str, os.PathLike)) else None


def build_agent(args: argparse.Namespace) -> Agent | None:
    """The agent that resumes runs: ``--agent``, the configuration, or None (``--read-only``)."""
    if args.read_only:
        return None
    if args.agent:
        made: Any = import_object(args.agent, "--agent", instantiate=False)
        if not isinstance(made, Agent):
            if not callable(made):
                raise ConfigError(f"--agent {args.agent!r} is neither an Agent nor a callable returning one")
            try:
                made = made()
            except (ConfigError, AgentError):
                raise
            except Exception as exc:
                raise ConfigError(f"--agent {args.agent}: the factory raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(made, Agent):
            raise ConfigError(f"--agent {args.agent!r} returned {type(made).__name__}, not an Agent")
        return made
    overrides = {"plugins.sqlite.path": args.journal} if args.journal else {}
    config = load_config(args.config, overrides=overrides, user=not args.no_user_config)
    if args.block:
        extra = tuple(args.block)
        import attrs

        config = attrs.evolve(config, agent=attrs.evolve(config.agent, block=(*config.agent.block, *extra)))
    return config.make_agent()


def prepare(args: argparse.Namespace) -> tuple[Any, str, str | None]:
    """Check the options and build the app; returns (app, journal path, token)."""
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env, "")
        if len(token) < 8:
            raise ConfigError(
                f"--token-env {args.token_env}: the variable is unset or shorter than 8 characters; "
                "set it to a long random value, e.g. export "
                f"{args.token_env}=$(python -c 'import secrets; print(secrets.token_urlsafe(24))')"
            )
    loopback = args.host in LOOPBACK_HOSTS
    if not loopback and token is None:
        raise ConfigError(
            f"--host {args.host} is not a loopback address: anyone who can reach it could approve tool calls. "
            "Pass --token-env VAR (the variable holding a token every request must carry), or bind 127.0.0.1"
        )
    agent = build_agent(args)
    journal = args.journal or (_journal_path(agent) if agent is not None else None)
    if not journal:
        raise ConfigError("no journal: pass --journal PATH (a SQLite journal file), or an agent whose journal is one")
    if agent is not None:
        used = _journal_path(agent)
        if used is None or os.path.abspath(used) != os.path.abspath(journal):
            raise ConfigError(
                f"the agent's journal ({used or type(agent.journal).__name__}) is not {journal}: decisions would "
                "resume runs in another journal; give the agent a SqliteJournal on the same file (or --read-only)"
            )
    if not os.path.isfile(journal):
        raise ConfigError(f"journal file {journal} does not exist")
    app = create_app(SqliteSource(journal), agent=agent, token=token, loopback_only=loopback and token is None)
    return app, journal, token


def run(args: argparse.Namespace) -> int:
    """Run ``agent-kernel serve`` until interrupted; exit 2 on a configuration error."""
    try:
        app, journal, token = prepare(args)
    except (ConfigError, AgentError) as exc:
        print(f"agent-kernel serve: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    host = f"[{args.host}]" if ":" in args.host and not args.host.startswith("[") else args.host
    hint = " (add ?token=... once)" if token else ""
    print(f"agent-kernel serve: http://{host}:{args.port}/ over {journal}{hint}", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host.strip("[]"), port=args.port, log_level="warning", access_log=False)
    return 0
