"""agent-plugin-memory: threads, context windows, replay and fork for agent-kernel.

Usage::

    from agent_kernel import Agent
    from agent_plugin_memory import LastTurns, Memory, Threads
    from agent_plugin_sqlite import SqliteJournal

    journal = SqliteJournal("agent.db")
    thread = await Threads(journal).create("support #12")
    agent = Agent(model="openai:gpt-4o-mini", plugins=[journal, Memory(journal, thread=thread.id), LastTurns(10)])
    await agent.run("My name is Ada.")
    await agent.run("What is my name?")  # the second run starts with the first one's conversation

- `Threads` (create, list, read, name, archive, fork) and `Memory` (continue a thread).
- Window strategies, applied before every inference as `SetWindow` patches:
  `LastTurns`, `TokenBudget`, `Summarize` (with `model_summarizer`).
- `replay` (a run's final state with zero calls) and `fork_run` (a run forked at a
  committed step), on any `Journal`.

Autoloaded, the module adds ``agent-kernel threads list|show|fork|export`` and
declares the plugin's state keys, so journals written with these plugins decode in
any agent with autoloading on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import frozen

from agent_kernel import hookimpl

from ._replay import ForkError as ForkError
from ._replay import fork_run as fork_run
from ._replay import replay as replay
from ._replay import replay_entries as replay_entries
from ._threads import INHERITED as INHERITED
from ._threads import STATE_KEYS
from ._threads import WINDOW_CARRY as WINDOW_CARRY
from ._threads import Memory as Memory
from ._threads import ThreadBusy as ThreadBusy
from ._threads import Threads as Threads
from ._windows import SUMMARIES as SUMMARIES
from ._windows import LastTurns as LastTurns
from ._windows import Summarize as Summarize
from ._windows import Summarizer as Summarizer
from ._windows import TokenBudget as TokenBudget
from ._windows import estimate_tokens as estimate_tokens
from ._windows import message_tokens as message_tokens
from ._windows import model_summarizer as model_summarizer

if TYPE_CHECKING:
    from agent_kernel import CommandRegistrar, RuntimeRegistrar

__version__ = "0.1.0"


@frozen
class Settings:
    """``[plugins.memory]`` in ``agent.toml`` (also set by ``[agent] thread`` and ``--thread``).

    Attributes:
        thread: the thread every run continues: its id or name, created by the first
            run when there is none. The runs are kept in the agent's journal, which
            must be a file (``[plugins.sqlite] path``).

    .. versionadded:: 0.1
    """

    thread: str

    def plugin(self) -> Memory:
        """The configured `Memory` plugin."""
        return Memory(thread=self.thread, create=True)


__all__ = [
    "INHERITED",
    "SUMMARIES",
    "Settings",
    "WINDOW_CARRY",
    "ForkError",
    "LastTurns",
    "Memory",
    "Summarize",
    "Summarizer",
    "ThreadBusy",
    "Threads",
    "TokenBudget",
    "estimate_tokens",
    "fork_run",
    "message_tokens",
    "model_summarizer",
    "replay",
    "replay_entries",
]


@hookimpl
def agent_register_runtime(runtime: RuntimeRegistrar) -> None:
    """Declare the plugin's state keys (journals written with Memory or Summarize decode)."""
    for key in (*STATE_KEYS, SUMMARIES):
        runtime.add_state_key(key)


@hookimpl
def agent_register_commands(commands: CommandRegistrar) -> None:
    """Add ``agent-kernel threads``."""
    from . import _command

    commands.add("threads", _command.configure, _command.run, help=_command.HELP)
