"""agent-plugin-demo: the ``agent-kernel demo`` command (``./dev demo``).

A scripted travel agent shows what the kernel does, with no network and no key: the
model is the testing kit's `ScriptedModel`, the tools an `agent_plugin_tools.Toolbox`
that runs two calls in parallel, the journal an `agent_plugin_sqlite.SqliteJournal`
in a temporary directory. A policy plugin suspends the run for approval of a booking;
a second process approves it, resumes the run and dies inside a tool call; the first
process resumes the run from the SQLite file and the answer streams. Then the demo
sums up the phases, patches and journal entries, and how often each model turn and
tool really ran.

Usage::

    agent-kernel demo [--fast]

or from Python, `main(fast=True)` (0 when the run completed as told).

Autoloading
===========

The distribution declares the entry point ``demo`` (group ``agent_kernel.plugins``)
pointing at this module. The module implements only ``agent_register_commands``, to
add the command; it registers nothing into an agent, and it imports the demo (and
agent-plugin-tools and agent-plugin-sqlite) only when the command runs.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from agent_kernel import hookimpl

if TYPE_CHECKING:
    from agent_kernel import CommandRegistrar

__version__ = "0.1.0"

__all__ = ["main"]

HELP = "watch a scripted agent run (no network, no key)"


def main(fast: bool = False) -> int:
    """Run the demo, printing it on stdout.

    Args:
        fast: no pauses between the steps and no typing pace.

    Returns:
        0 when the run completed as told; 1 otherwise, or when agent-plugin-tools or
        agent-plugin-sqlite is missing (said on stderr).
    """
    from ._demo import main as run_demo

    return run_demo(fast=fast)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "A scripted travel agent: parallel tools, an approval, a second process that crashes "
        "mid-tool, a resume from SQLite, and a summary of what the kernel did."
    )
    parser.add_argument("--fast", action="store_true", help="no pauses between the steps")


def _run(args: argparse.Namespace) -> int:
    return main(fast=args.fast)


@hookimpl
def agent_register_commands(commands: CommandRegistrar) -> None:
    """Add ``agent-kernel demo``."""
    commands.add("demo", _configure, _run, help=HELP)
