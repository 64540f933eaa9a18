"""``agent-kernel threads list|show|fork|export PATH ...``: threads in a journal file."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from agent_kernel import Agent, Message, RunState
from agent_kernel.errors import AgentError
from agent_plugin_sqlite import SqliteJournal, Thread

from ._threads import Threads

HELP = "list, show, fork and export the threads of a SQLite journal file"


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agent-kernel threads``."""
    parser.description = (
        "Work with the threads (conversations across runs) of an agent-plugin-sqlite journal file. "
        "Runs are decoded with the installed plugins' codecs."
    )
    sub = parser.add_subparsers(dest="action", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("path", help="the journal file (it must exist)")
        p.add_argument("--block", action="append", default=[], metavar="NAME", help="skip the plugin NAME")
        return p

    p = command("list", "the threads as JSON, oldest first")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--archived", action="store_true", help="only archived threads")
    which.add_argument("--all", action="store_true", help="active and archived threads")
    p = command("show", "a thread's conversation, as text")
    p.add_argument("thread", help="the thread id")
    p = command("export", "a thread and its whole conversation as one JSON object")
    p.add_argument("thread", help="the thread id")
    p = command("fork", "fork a thread (at a run, or at a committed step of a run); prints the fork as JSON")
    p.add_argument("thread", help="the thread id")
    p.add_argument("--at-run", metavar="RUN_ID", help="the run to fork at (default: the last)")
    p.add_argument("--at-step", type=int, metavar="N", help="fork that run after its committed step N (0: its start)")
    p.add_argument("--name", help="the fork's name (default: the parent's)")
    p.add_argument("--id", dest="new_id", metavar="THREAD_ID", help="the fork's id (default: random)")


def run(args: argparse.Namespace) -> int:
    """Run ``agent-kernel threads``: exit 0, or 1 with a message when something is wrong."""
    if not pathlib.Path(args.path).is_file():
        print(f"agent-kernel threads: journal file {args.path} does not exist", file=sys.stderr)
        return 1
    journal = SqliteJournal(args.path)
    try:
        Agent(None, [journal], block=args.block)  # binds the journal to a codec knowing the plugins' state keys
        action: Callable[[Threads, argparse.Namespace], Coroutine[Any, Any, str]] = ACTIONS[args.action]
        output = anyio.run(action, Threads(journal), args)
    except (AgentError, ValueError) as exc:
        print(f"agent-kernel threads {args.action}: {exc}", file=sys.stderr)
        return 1
    finally:
        journal.close()
    print(output)
    return 0


def thread_json(thread: Thread) -> dict[str, Any]:
    return {
        "id": thread.id,
        "name": thread.name,
        "created": thread.created,
        "updated": thread.updated,
        "archived": thread.archived,
        "parent_id": thread.parent_id,
        "fork_run_id": thread.fork_run_id,
        "run_ids": list(thread.run_ids),
        "metadata": dict(thread.metadata),
    }


def message_json(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": dict(c.arguments)} for c in message.tool_calls]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
        out["is_error"] = message.is_error
    return out


async def list_threads(threads: Threads, args: argparse.Namespace) -> str:
    archived = None if args.all else args.archived
    return json.dumps([thread_json(t) for t in await threads.list(archived=archived)], indent=2)


async def _thread_and_state(threads: Threads, thread_id: str) -> tuple[Thread, RunState | None]:
    return await threads.get(thread_id), await threads.state(thread_id)


async def show(threads: Threads, args: argparse.Namespace) -> str:
    thread, state = await _thread_and_state(threads, args.thread)
    status = state.status if state is not None else "no runs"
    lines = [f"thread {thread.id} {thread.name!r}: {len(thread.run_ids)} run(s), last run {status}"]
    if thread.parent_id:
        lines.append(f"forked from {thread.parent_id} at {thread.fork_run_id or 'its start'}")
    for message in state.messages if state is not None else ():
        text = message.content
        if message.tool_calls:
            text += " ".join(f"{c.name}({json.dumps(dict(c.arguments))})" for c in message.tool_calls)
        label = message.role + (" (error)" if message.is_error else "")
        lines.append(f"{label}: {text}")
    if state is not None and state.summary:
        lines.append(f"[summary of messages before {state.window_start}]: {state.summary}")
    return "\n".join(lines)


async def export(threads: Threads, args: argparse.Namespace) -> str:
    thread, state = await _thread_and_state(threads, args.thread)
    document: dict[str, Any] = {"thread": thread_json(thread), "status": None, "messages": []}
    if state is not None:
        document.update(
            status=state.status,
            run_id=state.run_id,
            window_start=state.window_start,
            summary=state.summary,
            messages=[message_json(m) for m in state.messages],
        )
    return json.dumps(document, indent=2)


async def fork(threads: Threads, args: argparse.Namespace) -> str:
    thread = await threads.fork(
        args.thread, at_run=args.at_run, at_step=args.at_step, name=args.name, new_id=args.new_id
    )
    return json.dumps(thread_json(thread), indent=2)


ACTIONS: dict[str, Callable[[Threads, argparse.Namespace], Coroutine[Any, Any, str]]] = {
    "list": list_threads,
    "show": show,
    "export": export,
    "fork": fork,
}
