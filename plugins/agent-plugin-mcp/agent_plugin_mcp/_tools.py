"""`MCPTools`: the tools of one MCP server as kernel tools, with a structured lifetime.

Lifetime
========

The kernel registers tools once, when an `Agent` is built, and its registration hooks
are synchronous; an MCP server is an async resource (a process or an HTTP session)
whose tools are known only once it answers ``tools/list``. So the server must be up
when the agent is built: either the agent starts it then (`MCPTools.start`, done by
``agent_register_tools`` when the server is not entered: a host thread with its own
event loop holds it until `close` or the end of the process, see `_host`), or the
application owns it with ``async with`` and builds the agent inside::

    async with MCPTools("time", command="mcp-server-time") as time:
        agent = Agent(model=..., plugins=[time])
        await agent.run("...")

Entering starts the server in a task group owned by the ``async with`` (a supervisor
task holds the SDK's ``Client`` and its transport; ``Nursery.start`` is the ready
handshake), lists its tools and returns; leaving it stops the server (stdin closed,
then SIGTERM/SIGKILL of its process group, every wait bounded) and reaps it, also on
error and cancellation. A run's tool calls talk to the supervisor's session from the
run's own task, inside the run's cancel scope: cancelling a run cancels the call
(the server is sent ``notifications/cancelled``), never the session.

The supervisor watches the connection: when the server's output ends (it exited or
was killed), every pending and later call fails at once with `MCPConnectionLost`
naming the server, and the process is reaped. With ``restart=True`` the next run
restarts the server when it starts (the ``agent_wrap_run`` hook), inside that run's
cancel scope; a run never sees the server change under it, except when another run
that starts concurrently restarts it.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from types import SimpleNamespace, TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import anyio
import anyio.to_thread

from agent_kernel import ToolContext, ToolRegistrar, ToolResult, ToolSpec, hookimpl
from agent_kernel.errors import ToolInputError

from ._content import to_tool_result
from ._errors import MCPConnectionLost, MCPError, MCPTimeout
from ._names import SEPARATOR, check_prefix, check_server_name, kernel_names

if TYPE_CHECKING:
    from ._host import Host

T = TypeVar("T")

_log = logging.getLogger("agent_plugin_mcp")

#: Characters of the server's stderr quoted in error messages.
STDERR_TAIL = 2000
_MAX_PAGES = 1000

_sdk: SimpleNamespace | None = None


def _import_sdk() -> SimpleNamespace:
    """Import the parts of the MCP SDK used here (about 2 s: done once, in a worker thread)."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError as ProtocolError
    from mcp.types import CONNECTION_CLOSED, INVALID_PARAMS, Implementation

    return SimpleNamespace(
        Client=Client,
        StdioServerParameters=StdioServerParameters,
        stdio_client=stdio_client,
        streamable_http_client=streamable_http_client,
        ProtocolError=ProtocolError,
        CONNECTION_CLOSED=CONNECTION_CLOSED,
        INVALID_PARAMS=INVALID_PARAMS,
        Implementation=Implementation,
    )


async def _load_sdk() -> SimpleNamespace:
    global _sdk
    if _sdk is None:
        _sdk = await anyio.to_thread.run_sync(_import_sdk)
    return _sdk


def _leaf(exc: BaseException) -> BaseException:
    """The first error in `exc` that is not a cancellation (the SDK's task groups wrap errors)."""
    if isinstance(exc, BaseExceptionGroup):
        cancelled = anyio.get_cancelled_exc_class()
        for inner in exc.exceptions:
            found = _leaf(inner)
            if not isinstance(found, cancelled):
                return found
        return exc.exceptions[0] if exc.exceptions else exc
    return exc


def _thaw(value: Any) -> Any:
    """Plain dicts and lists for the SDK (the kernel hands read-only mappings)."""
    if isinstance(value, Mapping):
        return {str(k): _thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(v) for v in value]
    return value


class _Stderr:
    """The server's stderr, captured in an anonymous temporary file to quote its tail."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115

    def tail(self, limit: int = STDERR_TAIL) -> str:
        pread = getattr(os, "pread", None)
        if pread is None or self.file.closed:  # pragma: no cover - Windows
            return ""
        try:
            fd = self.file.fileno()
            size = os.fstat(fd).st_size
            start = max(0, size - 4 * limit)
            # pread leaves the offset the server's process shares with us alone.
            text: str = pread(fd, size - start, start).decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        if start > 0:
            text = text.partition("\n")[2]
        return text[-limit:]

    def close(self) -> None:
        self.file.close()


class _WatchedStream:
    """The transport's read stream; calls `on_eof` when the server's messages end."""

    def __init__(self, stream: Any, on_eof: Callable[[], None]) -> None:
        self._stream = stream
        self._on_eof = on_eof

    async def receive(self) -> Any:
        try:
            return await self._stream.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._on_eof()
            raise

    def __aiter__(self) -> _WatchedStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def __aenter__(self) -> _WatchedStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@asynccontextmanager
async def _watched(transport: Any, on_eof: Callable[[], None]) -> AsyncIterator[tuple[Any, Any]]:
    async with transport as (read, write):
        yield _WatchedStream(read, on_eof), write


class _Connection:
    """One connection to the server (one process, for stdio): from start to end."""

    __slots__ = ("client", "done", "lost", "ready", "stderr", "stopping")

    def __init__(self, stderr: _Stderr | None) -> None:
        self.client: Any = None
        self.stderr = stderr
        self.done = anyio.Event()  # set to end the connection: stop, or lost
        self.ready = False
        self.stopping = False
        self.lost: MCPConnectionLost | None = None

    def tail(self) -> str:
        return self.stderr.tail() if self.stderr is not None else ""


class MCPTools:
    """The tools of one MCP server, offered to the model as kernel tools.

    Enter it with ``async with`` (that starts the server and lists its tools) and
    build the `Agent` inside; leaving the block stops the server. Or just give it to
    an `Agent`: building the agent starts it (`start`) until `close` or the end of
    the process.

    The tool ``t`` of the server appears as ``<name>__t`` (see
    `agent_plugin_mcp.kernel_names` for the naming rule), with the server's
    description and input schema; a tool annotated read-only or idempotent is
    registered as idempotent.

    Args:
        name: the server's name: it prefixes its tools and names it in errors; the
            plugin registers as ``mcp:<name>``.
        command: the executable of a stdio server (with `args`, `env`, `cwd`), or a
            list: the executable and its first arguments (``["uvx", "mcp-server-time"]``).
        url: the endpoint of a streamable HTTP server (with `headers`).
        env: extra environment variables for a stdio server, over the SDK's minimal
            default environment (HOME, LOGNAME, PATH, SHELL, TERM, USER).
        args: the command's arguments.
        cwd: the working directory of a stdio server.
        headers: HTTP headers sent with every request (e.g. authorization).
        timeout: seconds allowed to start the server, negotiate and list its tools
            (also for a restart).
        call_timeout: seconds allowed for one tool call, or None for no limit; an
            expired call is cancelled on the server and fails with `MCPTimeout`.
        tool_prefix: the prefix of the kernel tool names instead of ``<name>__``;
            ``""`` offers the tools under the server's own names.
        tools: if given, only these tools of the server (by the server's names) are
            offered; naming a tool the server lacks fails at start.
        restart: restart a server that died, when the next run starts.

    Raises:
        ValueError: a bad name, prefix or timeout, or not exactly one of `command` and `url`.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        name: str,
        command: str | Sequence[str] | None = None,
        url: str | None = None,
        env: Mapping[str, str] | None = None,
        *,
        args: Sequence[str] = (),
        cwd: str | os.PathLike[str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        call_timeout: float | None = None,
        tool_prefix: str | None = None,
        tools: Collection[str] | None = None,
        restart: bool = True,
    ) -> None:
        self.server = check_server_name(name)
        if isinstance(args, str):
            raise ValueError(f"MCP server {name!r}: args must be a list of strings, not the string {args!r}")
        if command is not None and not isinstance(command, str):
            if isinstance(command, bytes) or not all(isinstance(part, str) for part in command):
                raise ValueError(f"MCP server {name!r}: command must be a string or a list of strings")
            if not command:
                raise ValueError(f"MCP server {name!r}: command is an empty list")
            # ["uvx", "mcp-server-time"]: the executable, then arguments before `args`
            command, args = command[0], [*command[1:], *args]
        if (command is None) == (url is None):
            raise ValueError(f"MCP server {name!r}: give exactly one of command= (stdio) and url= (streamable HTTP)")
        if url is not None and (env or args or cwd is not None):
            raise ValueError(f"MCP server {name!r}: env, args and cwd apply to a command, not to a url")
        if command is not None and headers:
            raise ValueError(f"MCP server {name!r}: headers apply to a url, not to a command")
        if not timeout > 0:
            raise ValueError(f"MCP server {name!r}: timeout must be a positive number of seconds")
        if call_timeout is not None and not call_timeout > 0:
            raise ValueError(f"MCP server {name!r}: call_timeout must be positive or None")
        if isinstance(tools, str):
            raise ValueError(f"MCP server {name!r}: tools must be a collection of tool names, not a string")
        #: The plugin's name (what `Agent(block=...)` and errors use).
        self.name = f"mcp:{name}"
        self.command = command
        self.args = tuple(args)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.url = url
        self.headers = dict(headers) if headers is not None else None
        self.timeout = float(timeout)
        self.call_timeout = call_timeout
        self.prefix = check_prefix(tool_prefix) if tool_prefix is not None else name + SEPARATOR
        self.only = frozenset(tools) if tools is not None else None
        self.restart = restart
        #: How the server is reached: the command line or the URL.
        self.target = shlex.join([command, *self.args]) if command is not None else str(url)
        self.restarts = 0
        self._specs: tuple[ToolSpec, ...] = ()
        self._remote: dict[str, str] = {}  # kernel tool name -> server tool name
        self._server_info: Any = None
        self._tg: Any = None
        self._conn: _Connection | None = None
        self._down: MCPError | None = None
        self._closing = False
        self._wake: anyio.Event | None = None
        self._restarting: anyio.Event | None = None
        self._host: Host | None = None
        self._hosted = False  # started by an agent, without `async with`

    def __repr__(self) -> str:
        how = f"command={self.target!r}" if self.command is not None else f"url={self.url!r}"
        return f"MCPTools({self.server!r}, {how})"

    # ------------------------------------------------------------------ public view

    @property
    def tools(self) -> tuple[ToolSpec, ...]:
        """The kernel tools of the server (known once started)."""
        return self._specs

    @property
    def connected(self) -> bool:
        """True while a connection to the server is up."""
        conn = self._conn
        return conn is not None and conn.ready and conn.lost is None

    @property
    def server_info(self) -> Any:
        """What the server says about itself (``name``, ``version``...), or None."""
        return self._server_info

    def stderr_tail(self, limit: int = STDERR_TAIL) -> str:
        """The last characters the running stdio server wrote to its stderr."""
        conn = self._conn
        return conn.stderr.tail(limit) if conn is not None and conn.stderr is not None else ""

    # ------------------------------------------------------------------ lifetime

    async def __aenter__(self) -> Self:
        host = self._host
        if host is not None and host.alive:
            raise RuntimeError(
                f"{self!r} was started for an agent built without `async with`; call close() before entering it"
            )
        await self._enter()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._exit()

    @asynccontextmanager
    async def _entered(self) -> AsyncIterator[None]:
        """``async with self`` for the host thread (no check against the host itself)."""
        await self._enter()
        try:
            yield
        finally:
            await self._exit()

    async def _enter(self) -> None:
        if self._tg is not None:
            raise RuntimeError(f"{self!r} is already entered")
        sdk = await _load_sdk()
        self._closing = False
        self._down = None
        self._wake = anyio.Event()
        tg = anyio.create_task_group()
        await tg.__aenter__()
        try:
            await tg.start(self._supervise, sdk)
        except BaseException:
            tg.cancel_scope.cancel()
            # Shield the group's own scope so a pending outer cancellation cannot
            # fire again inside __aexit__ (the shutdown inside is bounded anyway).
            tg.cancel_scope.shield = True
            await tg.__aexit__(None, None, None)
            raise
        self._tg = tg

    async def _exit(self) -> None:
        tg, self._tg = self._tg, None
        if tg is None:
            return
        self._closing = True
        conn = self._conn
        if conn is not None:
            conn.stopping = True
            conn.done.set()
            if not conn.ready:  # a restart is under way: do not wait for it to finish
                tg.cancel_scope.cancel()
        if self._wake is not None:
            self._wake.set()
        # The body's exception (if any) goes on by itself: handing it to the task
        # group would only wrap it in an exception group.
        await tg.__aexit__(None, None, None)

    async def _supervise(self, sdk: SimpleNamespace, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Own the connection(s): the first one reports ready through `task_status`."""
        await self._connect(sdk, task_status.started)
        try:
            while not self._closing:
                assert self._wake is not None
                await self._wake.wait()  # the connection is gone: wait for a restart or the end
                self._wake = anyio.Event()
                if self._closing:
                    return
                self.restarts += 1
                try:
                    await self._connect(sdk, self._restart_done)
                except MCPError as exc:
                    _log.warning("MCP server %r could not be restarted: %s", self.server, exc)
                    # What later calls raise, and so what the model reads: without the stderr.
                    self._down = type(exc)(
                        f"{exc.message} (restarting it after it had died)",
                        server=self.server,
                        target=self.target,
                        stderr=exc.stderr,
                        quote=False,
                    )
                finally:
                    self._restart_done()
        finally:
            self._restart_done()  # nobody waits for a restart that will not come

    def _restart_done(self) -> None:
        done, self._restarting = self._restarting, None
        if done is not None:
            done.set()

    async def _connect(self, sdk: SimpleNamespace, ready: Callable[[], None]) -> None:
        """Start the server, list its tools, call `ready()`, hold the connection until it ends."""
        conn = _Connection(_Stderr() if self.command is not None else None)
        self._conn = conn
        failure: MCPError | None = None
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + self.timeout) as scope:
                async with self._open(sdk, conn) as client:
                    listed = await self._list(client)
                    scope.deadline = math.inf
                    failure = self._adopt(listed)
                    if failure is None:
                        conn.client = client
                        conn.ready = True
                        self._server_info = client.server_info
                        self._down = None
                        _log.info("MCP server %r is up (%s): %d tools", self.server, self.target, len(self._specs))
                        ready()
                        await conn.done.wait()
                    conn.stopping = True
            if scope.cancelled_caught and not conn.ready:
                failure = MCPTimeout(
                    f"MCP server {self.server!r} ({self.target}) did not start and list its tools within "
                    f"{self.timeout} s",
                    server=self.server,
                    target=self.target,
                    stderr=conn.tail(),
                )
        except Exception as group:
            exc = _leaf(group)
            if not conn.ready:
                raise self._start_failure(exc, conn) from exc
            # The connection broke while it was up or closing: calls already fail
            # with `lost`; log it rather than tearing down the application's block.
            level = logging.DEBUG if conn.lost is not None else logging.WARNING
            if conn.lost is None and not conn.stopping:
                conn.lost = self._lost(conn, f"{type(exc).__name__}: {exc}")
            _log.log(level, "MCP server %r: connection ended with %s: %s", self.server, type(exc).__name__, exc)
        finally:
            self._conn = None
            self._down = conn.lost or MCPConnectionLost(
                f"MCP server {self.server!r} is not connected", server=self.server, target=self.target
            )
            if conn.stderr is not None:
                conn.stderr.close()
        if failure is not None:
            raise failure

    @asynccontextmanager
    async def _open(self, sdk: SimpleNamespace, conn: _Connection) -> AsyncIterator[Any]:
        """The SDK's client over a watched transport (stdio or streamable HTTP)."""

        def on_eof() -> None:
            if conn.ready and not conn.stopping:
                self._mark_lost(conn)
            conn.done.set()

        async with AsyncExitStack() as stack:
            if self.command is not None:
                assert conn.stderr is not None
                params = sdk.StdioServerParameters(
                    command=self.command, args=list(self.args), env=self.env, cwd=self.cwd
                )
                transport = sdk.stdio_client(params, errlog=conn.stderr.file)
            else:
                http = None
                if self.headers:
                    import httpx2  # the SDK's HTTP client library (a dependency of mcp 2)

                    http = await stack.enter_async_context(
                        httpx2.AsyncClient(headers=self.headers, timeout=httpx2.Timeout(30.0, read=300.0))
                    )
                transport = sdk.streamable_http_client(self.url, http_client=http)
            client = sdk.Client(
                _watched(transport, on_eof),
                cache=None,
                client_info=sdk.Implementation(name="agent-plugin-mcp", version="0.1.0"),
            )
            yield await stack.enter_async_context(client)

    async def _list(self, client: Any) -> list[Any]:
        listed: list[Any] = []
        cursor = None
        for _ in range(_MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            listed.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return listed

    def _adopt(self, listed: Sequence[Any]) -> MCPError | None:
        """Take the server's tool list: build the specs (first start) or check it (restart)."""
        by_name = {tool.name: tool for tool in listed}
        if self.only is not None:
            missing = sorted(self.only - by_name.keys())
            if missing:
                return MCPError(
                    f"MCP server {self.server!r} ({self.target}) has no tool {', '.join(map(repr, missing))}; "
                    f"it has: {', '.join(sorted(by_name)) or 'none'}",
                    server=self.server,
                    target=self.target,
                )
            by_name = {name: tool for name, tool in by_name.items() if name in self.only}
        names = kernel_names(self.prefix, by_name)
        remote = {kernel: server for server, kernel in names.items()}
        if self._specs and self._tg is not None:  # a restart: the agents keep the specs they have
            if set(remote) != set(self._remote):
                _log.warning(
                    "MCP server %r lists different tools after its restart (%s); agents keep the tools they were built with",
                    self.server,
                    ", ".join(sorted(set(remote) ^ set(self._remote))),
                )
            self._remote.update(remote)
            return None
        specs = []
        for server_name, kernel_name in names.items():
            tool = by_name[server_name]
            hints = tool.annotations
            idempotent = bool(hints is not None and (hints.read_only_hint or hints.idempotent_hint))
            schema = tool.input_schema if isinstance(tool.input_schema, Mapping) else {"type": "object"}
            specs.append(ToolSpec(kernel_name, tool.description or tool.title or "", schema, idempotent, self.name))
        self._specs = tuple(specs)
        self._remote = remote
        return None

    def _start_failure(self, exc: BaseException, conn: _Connection) -> MCPError:
        if isinstance(exc, MCPError):
            return exc
        where = f"MCP server {self.server!r}"
        sdk = _sdk
        if isinstance(exc, FileNotFoundError | PermissionError | NotADirectoryError):
            message = f"{where} could not be started: {self.target}: {exc.strerror or exc}"
            if self.cwd is not None:
                message += f" (cwd {os.fspath(self.cwd)!r})"
        elif sdk is not None and isinstance(exc, sdk.ProtocolError) and exc.code == sdk.CONNECTION_CLOSED:
            message = f"{where} ({self.target}) exited or closed the connection before it was ready"
        else:
            message = f"{where} ({self.target}) failed to start: {type(exc).__name__}: {exc}"
        return MCPError(message, server=self.server, target=self.target, stderr=conn.tail())

    def _lost(self, conn: _Connection, why: str = "") -> MCPConnectionLost:
        what = "its process exited or was killed" if self.command is not None else "the HTTP session ended"
        message = f"MCP server {self.server!r} ({self.target}) closed the connection: {why or what}"
        if self.restart:
            message += "; it is restarted when the next run starts"
        return MCPConnectionLost(message, server=self.server, target=self.target, stderr=conn.tail(), quote=False)

    def _mark_lost(self, conn: _Connection) -> MCPConnectionLost:
        """Record that `conn` is gone (once) and wake the supervisor to reap it."""
        if conn.lost is None:
            conn.lost = self._lost(conn)
            tail = conn.lost.stderr.rstrip()
            _log.warning("%s%s", conn.lost, f"\n--- stderr of the server (last lines) ---\n{tail}" if tail else "")
        conn.done.set()
        return conn.lost

    def _unavailable(self) -> MCPError:
        if self._tg is None:
            return MCPError(
                f"MCP server {self.server!r} is not running: its tools work only inside `async with MCPTools(...)` "
                "or, for an agent built without it, until close()",
                server=self.server,
                target=self.target,
            )
        return self._down or MCPError(f"MCP server {self.server!r} is not connected", server=self.server)

    # ------------------------------------------------------------------ hooks

    @hookimpl
    def agent_register_tools(self, tools: ToolRegistrar) -> None:
        if self._tg is None:  # no `async with`: start the server now, for the agent's runs
            self.start()
        for spec in self._specs:
            tools.add(spec, self._function(spec.name))

    @hookimpl
    def agent_wrap_run(self) -> AbstractAsyncContextManager[None] | None:
        host = self._host
        if self._hosted:
            if host is None or not host.alive:  # closed since the agent was built: start it again
                return self._rehosted()
            if self._needs_restart():
                return self._restarted_in_host(host)
            return None
        if self._tg is None:
            raise self._unavailable()
        if self._needs_restart():
            return self._restarted()
        return None

    def _needs_restart(self) -> bool:
        conn = self._conn
        return self.restart and not self._closing and (conn is None or conn.lost is not None or bool(self._restarting))

    # ------------------------------------------------------------------ started without `async with`

    def start(self) -> None:
        """Start the server in a thread of its own and wait until it has listed its tools.

        What `Agent(plugins=[MCPTools(...)])` does when the server is not entered with
        ``async with``: the server then stays up for the agent's runs, whatever event
        loop they use, until `close` or the end of the process. Blocks (the SDK's first
        import and the server's start: seconds); does nothing if the server is up.

        Raises:
            MCPError: the server did not start (as ``async with`` would raise it).
        """
        self._begin()
        self._finish()

    def _begin(self) -> None:
        """Start the host thread (several servers can start at once: `_finish` waits)."""
        host = self._host
        if self._tg is not None and (host is None or not host.here):
            return  # entered with `async with`, or hosted and up
        from ._host import Host

        self._host = Host(self)
        self._hosted = True
        self._host.start()

    def _finish(self) -> None:
        host = self._host
        if host is None:
            return
        try:
            host.wait()
        except BaseException:
            self._host = None
            raise

    def close(self) -> None:
        """Stop a server started by `start` (by an agent built without ``async with``).

        Also done at the end of the process. A later run of an agent that uses this
        server starts it again. Does nothing if it is not running that way.
        """
        host, self._host = self._host, None
        if host is not None:
            host.stop()

    async def aclose(self) -> None:
        """`close` from async code (it waits for the server in a worker thread)."""
        await anyio.to_thread.run_sync(self.close)

    @asynccontextmanager
    async def _rehosted(self) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(self.start)
        yield

    @asynccontextmanager
    async def _restarted_in_host(self, host: Host) -> AsyncIterator[None]:
        await self._in_host(host, self._restart_now)
        yield

    async def _restart_now(self) -> None:
        async with self._restarted():
            pass

    async def _in_host(self, host: Host, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        from ._host import HostGone

        try:
            return await host.run(fn, *args)
        except HostGone:
            raise MCPConnectionLost(
                f"MCP server {self.server!r} ({self.target}) was stopped (close() or the end of the process)",
                server=self.server,
                target=self.target,
            ) from None

    @asynccontextmanager
    async def _restarted(self) -> AsyncIterator[None]:
        """Restart the server (once, however many runs ask) and wait until it is up or failed.

        The condition is checked again here: another run may have restarted the server
        between the hook's call and this manager's entry.
        """
        conn = self._conn
        healthy = conn is not None and conn.ready and conn.lost is None
        if self._restarting is None and not healthy and not self._closing and self._tg is not None:
            self._restarting = anyio.Event()
            assert self._wake is not None
            self._wake.set()
        if self._restarting is not None:
            await self._restarting.wait()
        yield

    # ------------------------------------------------------------------ calls

    def _function(self, kernel_name: str) -> Callable[[Mapping[str, Any], ToolContext], Any]:
        async def call_mcp_tool(arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
            return await self.call(self._remote[kernel_name], arguments)

        call_mcp_tool.__qualname__ = f"MCPTools({self.server!r}).{kernel_name}"
        return call_mcp_tool

    async def call(self, tool: str, arguments: Mapping[str, Any] | None = None) -> ToolResult:
        """Call the server's tool `tool` (its own name) and map its result to a `ToolResult`.

        A result the server flags ``is_error`` is returned (``is_error=True``).

        Raises:
            ToolInputError: the server refused the arguments (JSON-RPC invalid params).
            MCPConnectionLost: the server is gone (now or before the call).
            MCPTimeout: no answer within ``call_timeout`` (the call is cancelled).
            MCPError: any other failure, naming the server.
        """
        host = self._host
        if host is not None and not host.here:  # started without `async with`: the call runs in its loop
            return await self._in_host(host, self._call, tool, arguments)
        return await self._call(tool, arguments)

    async def _call(self, tool: str, arguments: Mapping[str, Any] | None) -> ToolResult:
        conn = self._conn
        if conn is None or not conn.ready:
            raise self._unavailable()
        if conn.lost is not None:
            raise conn.lost
        sdk = _sdk
        assert sdk is not None
        try:
            with anyio.fail_after(self.call_timeout):
                result = await conn.client.call_tool(tool, _thaw(arguments or {}))
        except sdk.ProtocolError as exc:
            if conn.lost is not None or exc.code == sdk.CONNECTION_CLOSED:
                raise self._mark_lost(conn) from None
            if exc.code == sdk.INVALID_PARAMS:
                raise ToolInputError(f"MCP server {self.server!r}: {exc.message}") from None
            raise MCPError(
                f"MCP server {self.server!r} answered the call of {tool!r} with error {exc.code}: {exc.message}",
                server=self.server,
                target=self.target,
            ) from None
        except TimeoutError:
            raise MCPTimeout(
                f"MCP server {self.server!r} did not answer the call of {tool!r} within {self.call_timeout} s "
                "(the call was cancelled)",
                server=self.server,
                target=self.target,
            ) from None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
            raise self._mark_lost(conn) from None
        except Exception as exc:
            if conn.lost is not None:
                raise conn.lost from exc
            raise MCPError(
                f"MCP server {self.server!r}: the call of {tool!r} failed: {type(exc).__name__}: {exc}",
                server=self.server,
                target=self.target,
            ) from exc
        return to_tool_result(result)
