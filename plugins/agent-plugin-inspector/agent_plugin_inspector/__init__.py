"""agent-plugin-inspector: a web inspector and approval inbox for agent-kernel journals.

Usage::

    agent-kernel serve --journal runs.db                 # http://127.0.0.1:8321/
    agent-kernel serve --journal runs.db --agent myapp:make_agent

or in code::

    from agent_plugin_inspector import SqliteSource, create_app

    app = create_app(SqliteSource("runs.db"), agent=agent)   # any ASGI server

Pages: **Runs** (status, model, steps, tool calls, tokens, duration; filters by status
and thread; keyset pages), **a run** (its timeline: steps, phases, messages, tool calls
and results, patches by plugin, retries, decisions, the outcome; live while the run
goes on; paged by step ranges), **Inbox** (every pending approval request, with
Approve, Approve with edited arguments and Deny with a reason; a decision resumes the
run in the server's process, exactly once), **Threads** (a thread's runs in order, fork
after a step).

The app reads journals through a small `Source` protocol (`SqliteSource` opens the
SQLite file read-only); `agent_plugin_inspector.testing.check_source` is its
conformance check, for other journals.

Autoloading
===========

The entry point ``inspector`` only adds the ``agent-kernel serve`` command; the module
implements no phase hook, so installing it changes no run.

Safety
======

Binds to loopback and answers only to loopback host names; any other address needs a
token (``--token-env VAR``), checked in constant time on every request. Decisions and
forks are POSTs checked for same-origin (``Sec-Fetch-Site``, ``Origin``) and a CSRF
token. Every value is HTML-escaped (Jinja2 autoescape) and the pages send a strict
Content-Security-Policy; entries pass the agent's redactors when it exposes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent_kernel import hookimpl

from ._source import PendingRequest as PendingRequest
from ._source import RawEntry as RawEntry
from ._source import RunPage as RunPage
from ._source import RunRow as RunRow
from ._source import Source as Source
from ._source import SourceUnavailable as SourceUnavailable
from ._source import SqliteSource as SqliteSource
from ._source import StepIndex as StepIndex
from ._source import ThreadRow as ThreadRow

if TYPE_CHECKING:
    from agent_kernel import CommandRegistrar

    from ._app import create_app as create_app


def __getattr__(name: str) -> Any:
    # Starlette and Jinja2 are imported only by whoever builds the app: autoloading this
    # plugin (for its command) must not slow down every agent's start.
    if name == "create_app":
        from ._app import create_app

        return create_app
    raise AttributeError(f"module 'agent_plugin_inspector' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "PendingRequest",
    "RawEntry",
    "RunPage",
    "RunRow",
    "Source",
    "SourceUnavailable",
    "SqliteSource",
    "StepIndex",
    "ThreadRow",
    "create_app",
]


@hookimpl
def agent_register_commands(commands: CommandRegistrar) -> None:
    """Add ``agent-kernel serve``: the web inspector and approval inbox."""
    from . import _command

    commands.add("serve", _command.configure, _command.run, help=_command.HELP)
