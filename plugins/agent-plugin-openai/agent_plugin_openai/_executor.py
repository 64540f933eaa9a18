"""`OpenAIExecutor`: one model on an OpenAI-compatible Chat Completions server."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from agent_kernel import Deltas, Request, Response
from agent_kernel.errors import InferenceError

from ._wire import Accumulator, Malformed, SSEDecoder, build_body, dumps

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_BASE_URL", "OpenAIExecutor"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_USER_AGENT = "agent-plugin-openai/0.1.0"
_EXCERPT = 300
_DRAIN_SECONDS = 1.0
_log = logging.getLogger("agent_plugin_openai")


class _StreamRefused(Exception):
    """The server would not stream a request with tools; `why` says how it showed it."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _dropped_connection(exc: InferenceError) -> bool:
    """The request failed on a pooled connection the server had closed (nothing was received)."""
    import httpx

    cause = exc.__cause__
    return isinstance(cause, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError)


def _refuses_streaming(detail: str) -> bool:
    """An error message that blames streaming (llama.cpp: "Cannot use tools with stream",
    llama-cpp-python: "Automatic streaming tool choice is not supported")."""
    return "stream" in detail.lower()


def _is_retryable_status(status: int) -> bool:
    """429, 408 (request timeout) and every 5xx may succeed later; other 4xx will not."""
    return status in (408, 429) or status >= 500


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "…"


def _error_detail(body: bytes) -> str:
    """The server's own words: ``error.message`` (with type/code) or a body excerpt."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return _excerpt(text) or "(empty body)"
    error = data
    if isinstance(data, dict):  # OpenAI: {"error": {...}}; FastAPI servers: {"detail": ...}
        error = data.get("error") or data.get("detail") or data
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        extra = ", ".join(f"{k}={error[k]}" for k in ("type", "code") if error.get(k) not in (None, ""))
        return _excerpt(error["message"]) + (f" ({extra})" if extra else "")
    if isinstance(error, str):
        return _excerpt(error)
    return _excerpt(text)


def _stream_error(url: str, payload: Any) -> InferenceError:
    """An ``error`` object inside the stream (after HTTP 200)."""
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    detail = _error_detail(dumps({"error": error}).encode())
    status = None
    if isinstance(error, dict):
        for key in ("status", "code"):
            if isinstance(error.get(key), int):
                status = error[key]
                break
    # The request was accepted and generation failed mid-way: transient unless the
    # server named a non-retryable status.
    retryable = _is_retryable_status(status) if status is not None else True
    return InferenceError(f"{url} reported an error mid-stream: {detail}", retryable=retryable, status=status)


def _loop_token() -> object:
    """An object identifying the running event loop (httpx clients must not cross loops)."""
    import sniffio

    if sniffio.current_async_library() == "trio":
        import trio

        return trio.lowlevel.current_trio_token()
    import asyncio

    return asyncio.get_running_loop()


class OpenAIExecutor:
    """Runs inferences for `model` on an OpenAI-compatible Chat Completions endpoint.

    Works with OpenAI, vLLM, Ollama and the llama.cpp servers. Answers stream as
    server-sent events: text reaches ``deltas.text`` as it arrives, tool calls are
    assembled by index, usage is read from the final chunk.

    Args:
        model: the model name sent to the server (the part after ``openai:``).
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1``; defaults to
            ``OPENAI_BASE_URL``, then ``https://api.openai.com/v1``.
        api_key: sent as a bearer token; defaults to ``OPENAI_API_KEY``. Required only
            for the default (OpenAI) base URL.
        timeout: seconds allowed for each network operation (connect, each read
            between chunks, write), or an ``httpx.Timeout``.
        settings: default request settings (temperature, max_tokens...); the
            request's own ``settings`` override them.
        headers: extra HTTP headers.
        stream: use streaming (the default); False sends one plain request.
        stream_usage: ask for the usage chunk (``stream_options.include_usage``);
            turn off for servers that reject the field. A server that still sends
            no usage is logged once and `usage_reported` becomes False: the kernel's
            `Usage` has no "unknown", so such answers count 0 tokens (1 request).
        tool_choice: the tool choice sent when the kernel asks for its default
            (``"auto"``) and the request has tools: ``"none"``, ``"required"``
            or a tool name (while that tool is among the request's tools); a
            plugin's ``patches.ToolChoice`` other than "auto" wins.
        transport: an ``httpx.AsyncBaseTransport`` (``httpx.MockTransport`` in tests).
        client: an ``httpx.AsyncClient`` you own; the executor then never closes it.

    Failures raise `InferenceError`: HTTP 408/429/5xx, timeouts, connection errors
    and a stream that breaks off are ``retryable`` (with ``retry_after`` from
    ``Retry-After`` / ``retry-after-ms``); other 4xx, malformed answers and bad
    configuration are not. Messages name the URL, the status and what the server said.

    A server that refuses to stream a request with tools (an HTTP error or a stream
    error blaming streaming, or, as llama-cpp-python's server does, a stream that ends
    before its first chunk) gets the same request again without streaming; the
    refusal is logged with the server's message and remembered (`streams_tools`
    becomes False), so later requests with tools go unstreamed.

    Tool-call arguments that are not a JSON object do not fail the inference: the
    call's arguments become ``{INVALID_ARGUMENTS: {"raw", "error"}}`` and the
    plugin's ``agent_before_tool_execute`` blocks it, so the model reads the error.

    httpx is imported on first use. One client (connection pool) is kept per event
    loop; call `aclose` to release it.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = 600.0,
        settings: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = True,
        stream_usage: bool = True,
        tool_choice: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.settings: Mapping[str, Any] = dict(settings or {})
        self.stream = stream
        self.stream_usage = stream_usage
        self.tool_choice = tool_choice
        #: Whether the server streams requests with tools: None until it refused once, then False.
        self.streams_tools: bool | None = None
        #: Whether the server reports token usage: None until the first answer, then
        #: False while its answers carry none (their usage then counts as 0 tokens).
        self.usage_reported: bool | None = None
        self.url = self.base_url + "/chat/completions"
        self._headers = {"user-agent": _USER_AGENT, **(headers or {})}
        if self._api_key:
            self._headers["authorization"] = f"Bearer {self._api_key}"
        self._transport = transport
        self._user_client = client
        self._client: httpx.AsyncClient | None = None
        self._client_loop: object = None

    def __repr__(self) -> str:
        return f"OpenAIExecutor({self.model!r}, base_url={self.base_url!r})"

    # ------------------------------------------------------------------ client

    def _get_client(self) -> httpx.AsyncClient:
        if self._user_client is not None:
            return self._user_client
        loop = _loop_token()
        if self._client is None or self._client_loop is not loop:
            import httpx

            timeout = self.timeout if isinstance(self.timeout, httpx.Timeout) else httpx.Timeout(self.timeout)
            self._client = httpx.AsyncClient(transport=self._transport, timeout=timeout)
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the connection pool this executor opened (not a client you passed in)."""
        client, self._client, self._client_loop = self._client, None, None
        if client is not None:
            await client.aclose()

    # ------------------------------------------------------------------ inference

    async def infer(self, request: Request, deltas: Deltas) -> Response:
        """Send `request`, stream the answer into `deltas`, return the `Response`.

        A request with tools that the server refuses to stream (see `streams_tools`)
        is sent again without streaming, and later requests with tools are not streamed.
        """
        if self._api_key is None and self.base_url == DEFAULT_BASE_URL:
            raise InferenceError(
                "no API key for api.openai.com: set OPENAI_API_KEY or pass api_key=, "
                "or point OPENAI_BASE_URL / base_url= at your own server"
            )
        choice = self.tool_choice
        # A tool name applies only while that tool is offered (a plugin may exclude it).
        if (
            choice is not None
            and request.tools
            and request.tool_choice == "auto"
            and (choice in ("none", "required") or any(t.name == choice for t in request.tools))
        ):
            request = attrs.evolve(request, tool_choice=choice)
        stream = self.stream and not (request.tools and self.streams_tools is False)
        try:
            return await self._send(request, deltas, stream=stream)
        except _StreamRefused as refused:
            first = refused.why
        self.streams_tools = False
        _log.warning(
            "%s: %s; sent again without streaming, and requests with tools to this server are no longer streamed",
            self.url,
            first,
        )
        try:
            try:
                return await self._send(request, deltas, stream=False)
            except InferenceError as exc:
                # The refusing server may close the connection it refused on (llama-cpp-python's
                # resets it) while the pool still holds it: one more try on a new connection.
                if not _dropped_connection(exc):
                    raise
            return await self._send(request, deltas, stream=False)
        except InferenceError as exc:
            raise InferenceError(
                f"{exc} (sent without streaming because {first})",
                retryable=exc.retryable,
                retry_after=exc.retry_after,
                status=exc.status,
            ) from exc

    async def _send(self, request: Request, deltas: Deltas, *, stream: bool) -> Response:
        body = build_body(self.model, request, defaults=self.settings, stream=stream, include_usage=self.stream_usage)
        import httpx

        client = self._get_client()
        headers = {**self._headers, "content-type": "application/json"}
        if stream:
            headers["accept"] = "text/event-stream"
        accumulator = Accumulator(deltas)
        # Only a refusal to stream a request with tools falls back (nothing has reached
        # `deltas` then): any other failure is the request's own.
        may_refuse = stream and bool(request.tools)
        try:
            async with client.stream("POST", self.url, content=dumps(body).encode(), headers=headers) as response:
                if response.status_code >= 400:
                    await self._raise_for_status(response, may_refuse=may_refuse)
                content_type = response.headers.get("content-type", "")
                if content_type.startswith("text/event-stream"):
                    await self._read_stream(response, accumulator, may_refuse=may_refuse)
                elif content_type.startswith("application/json") or (not stream and not content_type):
                    accumulator.feed(self._decode(await response.aread()))
                else:
                    excerpt = _excerpt((await response.aread()).decode("utf-8", "replace"))
                    raise InferenceError(
                        f"{self.url} answered HTTP {response.status_code} with content-type "
                        f"{content_type or 'none'!r}, not a Chat Completions answer: {excerpt or '(empty body)'}",
                        status=response.status_code,
                    )
            if accumulator.usage is not None:
                self.usage_reported = True
            elif accumulator.chunks:
                self._no_usage(asked=stream and self.stream_usage)
            return accumulator.response(self.model)
        except Malformed as exc:
            raise InferenceError(f"malformed answer from {self.url}: {exc}", status=200) from exc
        except httpx.TimeoutException as exc:
            raise InferenceError(
                f"{self.url} timed out ({type(exc).__name__}) after {self._timeout_text()}", retryable=True
            ) from exc
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            raise InferenceError(f"cannot send to {self.url}: {exc}") from exc
        except httpx.TransportError as exc:
            what = "could not connect to" if isinstance(exc, httpx.ConnectError) else "connection to"
            tail = "" if isinstance(exc, httpx.ConnectError) else " failed"
            raise InferenceError(
                f"{what} {self.url}{tail}: {type(exc).__name__}: {exc or 'no detail'}", retryable=True
            ) from exc
        except httpx.HTTPError as exc:
            raise InferenceError(f"request to {self.url} failed: {type(exc).__name__}: {exc}") from exc

    def _no_usage(self, *, asked: bool) -> None:
        """The server's answer said nothing about tokens: say so once, and remember it."""
        if self.usage_reported is not False:
            _log.warning(
                "%s sent no token usage with its answer%s: the usage of such answers is unknown and counts as "
                "0 tokens (1 request); see %r.usage_reported",
                self.url,
                " although stream_options.include_usage asked for it" if asked else "",
                self,
            )
        self.usage_reported = False

    def _timeout_text(self) -> str:
        timeout = self.timeout
        return f"{timeout:g}s" if isinstance(timeout, (int, float)) else repr(timeout)

    async def _raise_for_status(self, response: httpx.Response, *, may_refuse: bool = False) -> None:
        status = response.status_code
        detail = _error_detail(await response.aread())
        if may_refuse and status != 429 and _refuses_streaming(detail):
            raise _StreamRefused(f"it answered a streamed request with tools with HTTP {status}: {detail}")
        retryable = _is_retryable_status(status)
        should = response.headers.get("x-should-retry")
        if should in ("true", "false"):
            retryable = should == "true"
        retry_after = _retry_after(response.headers)
        wait = f" (retry after {retry_after:g}s)" if retry_after is not None else ""
        raise InferenceError(
            f"{self.url} answered HTTP {status} {response.reason_phrase}: {detail}{wait}",
            retryable=retryable,
            retry_after=retry_after,
            status=status,
        )

    def _decode(self, data: bytes | str) -> Any:
        try:
            return json.loads(data)
        except ValueError as exc:
            text = data if isinstance(data, str) else data.decode("utf-8", "replace")
            raise Malformed(f"not JSON ({exc}): {_excerpt(text)!r}") from None

    async def _read_stream(
        self, response: httpx.Response, accumulator: Accumulator, *, may_refuse: bool = False
    ) -> None:
        decoder = SSEDecoder()
        done = False
        lines = response.aiter_lines()
        async for line in lines:
            event = decoder.line(line)
            if event is None:
                continue
            if self._event(event, accumulator, may_refuse=may_refuse):
                done = True
                break
        else:
            event = decoder.flush()  # a last event without its blank line
            if event is not None:
                done = self._event(event, accumulator, may_refuse=may_refuse)
        if may_refuse and not done and accumulator.chunks == 0:
            # llama-cpp-python's server answers HTTP 200 and ends the stream at once when
            # it cannot stream a tool call; its reason goes only to its own log.
            raise _StreamRefused(
                "it ended the streamed answer to a request with tools before its first chunk, without a word "
                "(llama-cpp-python's server does this when it cannot stream a tool call; its log then says "
                "'Automatic streaming tool choice is not supported')"
            )
        if done:
            # Read the body's end too, so the connection goes back to the pool (an
            # unfinished response is closed instead); a server that keeps the stream
            # open after [DONE] only costs that connection.
            with anyio.move_on_after(_DRAIN_SECONDS):
                async for _ in lines:
                    pass
        if not done and accumulator.finish_reason is None:
            raise InferenceError(
                f"the stream from {self.url} ended before the answer was complete "
                f"(no finish_reason and no [DONE] after {accumulator.chunks} chunks)",
                retryable=True,
                status=response.status_code,
            )

    def _event(self, event: tuple[str, str], accumulator: Accumulator, *, may_refuse: bool = False) -> bool:
        """Handle one SSE event; True at ``[DONE]``."""
        kind, data = event
        if data.strip() == "[DONE]":
            return True
        payload = self._decode(data)
        if kind == "error" or (isinstance(payload, dict) and payload.get("error")):
            error = _stream_error(self.url, payload)
            if may_refuse and accumulator.chunks == 0 and _refuses_streaming(dumps(payload)):
                raise _StreamRefused(f"it answered a streamed request with tools with an error: {error}")
            raise error
        accumulator.feed(payload)
        return False
