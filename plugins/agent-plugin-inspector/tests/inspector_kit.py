"""Shared pieces of the inspector tests: a scripted agent on a journal file, gates the tests
open, a server in a thread, runs in threads. Importable by ``agent-kernel serve --agent``.

The scripted model reads the run's first user message:

* ``deploy TARGET``: asks for ``deploy(target=TARGET)`` (which needs approval), then answers.
* ``gates N``: asks for ``gate(n=1)`` ... ``gate(n=N)``, one a step, then answers; each
  gate call waits until the test opens it (`open_gate`).
* ``echo TEXT``: asks for ``echo(text=TEXT)``, then answers with the result.
* ``fail``: asks for ``broken()``, whose error ends as an error result, then answers.
* ``steps N``: asks for ``add(a=i, b=1)`` N times, then answers (a long run, fast).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import uvicorn

from agent_kernel import Agent, Request
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_plugin_approval import Approval
from agent_plugin_approval.policies import require_approval
from agent_plugin_sqlite import SqliteJournal
from agent_plugin_tools import Toolbox

GATES: dict[str, threading.Event] = {}
CALLS: dict[str, int] = {}
_lock = threading.Lock()


def _gate(key: str) -> threading.Event:
    with _lock:
        return GATES.setdefault(key, threading.Event())


def open_gate(key: str) -> None:
    """Let the ``gate`` tool call with this key (``"RUN/n"``) return."""
    _gate(key).set()


def _count(name: str) -> None:
    with _lock:
        CALLS[name] = CALLS.get(name, 0) + 1


async def gate(n: int, run: str = "") -> str:
    """Wait until the test opens gate `n` of run `run`."""
    event = _gate(f"{run}/{n}")
    deadline = time.monotonic() + 120
    while not event.is_set():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {run}/{n} was never opened")
        await anyio.sleep(0.02)
    return f"gate {n} passed"


def deploy(target: str) -> str:
    """Deploy to `target` (needs approval)."""
    _count(f"deploy:{target}")
    return f"deployed {target}"


def echo(text: str) -> str:
    """Return `text` as it is."""
    return text


def broken() -> str:
    """Always fails."""
    raise RuntimeError("the tool broke")


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def policy(request: Request) -> Any:
    """The scripted model: what to do next, from the run's first user message."""
    first = next(m.content for m in request.messages if m.role == "user")
    done = sum(1 for m in request.messages if m.role == "assistant")
    last = request.messages[-1]
    verb, _, rest = first.partition(" ")
    if verb == "deploy":
        return tool_call("deploy", target=rest) if done == 0 else text(f"finished: {last.content}")
    if verb == "gates":
        run = rest.split()[1] if len(rest.split()) > 1 else ""
        return tool_call("gate", n=done + 1, run=run) if done < int(rest.split()[0]) else text("all gates passed")
    if verb == "echo":
        return tool_call("echo", text=rest) if done == 0 else text(last.content)
    if verb == "fail":
        return tool_call("broken") if done == 0 else text("the tool failed")
    if verb == "steps":
        return tool_call("add", a=done, b=1) if done < int(rest) else text("counted")
    return text(f"you said: {first}")


def make_agent(path: str | os.PathLike[str] | None = None) -> Agent:
    """The test agent on the journal file `path` (default: ``$INSPECTOR_TEST_JOURNAL``)."""
    journal = SqliteJournal(path if path is not None else os.environ["INSPECTOR_TEST_JOURNAL"], durability="batched")
    return Agent(
        model="scripted",
        plugins=[
            journal,
            ScriptedModel([policy] * 5000),
            Toolbox([deploy, gate, echo, broken, add]),
            Approval(require_approval("deploy")),
        ],
        autoload=False,
    )


def run_now(path: str | os.PathLike[str], prompt: str, run_id: str) -> Any:
    """Run `prompt` to its end (or suspension) on a fresh agent; return the outcome."""

    async def go() -> Any:
        return await make_agent(path).run(prompt, run_id=run_id)

    return anyio.run(go, backend="trio")


class Background:
    """A run (or any coroutine function) going on in its own thread and trio loop."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(fn,), daemon=True)
        self._thread.start()

    def _main(self, fn: Callable[[], Any]) -> None:
        try:
            self.result = anyio.run(fn, backend="trio")
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float = 60) -> Any:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the background run did not end within {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll `condition` until it returns something truthy (generous timeout, for loaded machines)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Server:
    """An ASGI app served by uvicorn on a free loopback port, in a thread; `stop` ends it."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        wait_for(lambda: self.server.started or not self.thread.is_alive(), "the server to start", 60)
        if not self.server.started:
            raise AssertionError("the inspector server did not start (see the log above)")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(60)
        self.sock.close()
        if self.thread.is_alive():
            raise AssertionError("the inspector server did not stop within 60 s")
