"""`Host`: a thread with its own event loop holding an `MCPTools` entered.

Used when an `MCPTools` is given to an `Agent` without ``async with``: the kernel
registers tools synchronously when the agent is built (perhaps before any event loop
runs, as the CLI does), and the server's tools are known only once it has listed
them. So the server is started then, in a daemon thread that runs ``async with
tools:`` in its own event loop (asyncio), and stays up for the runs that follow,
whatever event loop they use. A run reaches it through an AnyIO blocking portal:
the call runs in the host's loop while the run's task waits in a worker thread, and
cancelling the run cancels the call there.

The host stops with `stop` (`MCPTools.close`), or at interpreter exit (``atexit``):
leaving the ``async with`` stops the server as it always does (stdin closed, then
SIGTERM/SIGKILL, every wait bounded) and the thread ends.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread

if TYPE_CHECKING:
    from ._tools import MCPTools

T = TypeVar("T")

#: Seconds allowed, beyond the server's own start timeout, to import the SDK and start the thread.
START_GRACE = 120.0
#: Seconds `stop` waits for the server to be stopped and the thread to end.
STOP_TIMEOUT = 30.0


class HostGone(RuntimeError):
    """The host thread is not running (stopped, or it ended)."""


_running: weakref.WeakSet[Host] = weakref.WeakSet()
_atexit_registered = False
_lock = threading.Lock()


def _stop_all() -> None:
    for host in list(_running):
        host.stop()


class Host:
    """Runs ``async with tools:`` in a daemon thread until `stop`."""

    def __init__(self, tools: MCPTools) -> None:
        self.tools = tools
        self.portal: anyio.from_thread.BlockingPortal | None = None
        self.error: BaseException | None = None
        self.ident: int | None = None
        self._ready = threading.Event()
        self._stop: anyio.Event | None = None
        self._thread = threading.Thread(target=self._main, name=f"mcp-server-{tools.server}", daemon=True)

    # ------------------------------------------------------------------ from the caller's thread

    def start(self) -> None:
        """Start the thread (it starts the server); `wait` for the outcome."""
        global _atexit_registered
        with _lock:
            if not _atexit_registered:
                atexit.register(_stop_all)
                _atexit_registered = True
            _running.add(self)
        self._thread.start()

    def wait(self) -> None:
        """Block until the server is up; raise its start failure."""
        from ._errors import MCPTimeout

        limit = self.tools.timeout + START_GRACE
        if not self._ready.wait(limit):
            self.stop()
            raise MCPTimeout(
                f"MCP server {self.tools.server!r} ({self.tools.target}) did not start within {limit:g} s",
                server=self.tools.server,
                target=self.tools.target,
            )
        if self.error is not None:
            _running.discard(self)
            raise self.error

    @property
    def here(self) -> bool:
        """True in the host's own thread."""
        return threading.get_ident() == self.ident

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.portal is not None and self.error is None

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await ``fn(*args)`` in the host's loop from another loop; cancelling cancels it there."""
        portal = self.portal
        if portal is None or not self._thread.is_alive():
            raise HostGone("the MCP host thread is not running")
        future = portal.start_task_soon(fn, *args)
        try:
            return await anyio.to_thread.run_sync(future.result, abandon_on_cancel=True)
        except concurrent.futures.CancelledError:
            raise HostGone("the MCP host stopped during the call") from None
        finally:
            if not future.done():
                future.cancel()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the server and end the thread (waits up to `timeout` seconds; idempotent)."""
        _running.discard(self)
        if self.here:
            raise RuntimeError("MCPTools.close() called from the server's own thread")
        portal, stop = self.portal, self._stop
        if portal is not None and stop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                portal.call(stop.set)
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ------------------------------------------------------------------ the thread

    def _main(self) -> None:
        self.ident = threading.get_ident()
        try:
            anyio.run(self._serve, backend="asyncio")
        except BaseException as exc:
            if self.error is None:
                self.error = exc
        finally:
            self.portal = None
            self._ready.set()

    async def _serve(self) -> None:
        self._stop = anyio.Event()
        async with anyio.from_thread.BlockingPortal() as portal:
            try:
                async with self.tools._entered():
                    self.portal = portal
                    self._ready.set()
                    await self._stop.wait()
            except BaseException as exc:
                if not self._ready.is_set():
                    self.error = exc
                    return
                raise
            finally:
                self.portal = None
