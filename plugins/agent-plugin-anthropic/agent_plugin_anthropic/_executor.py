"""`AnthropicExecutor`: one Claude model behind the Messages API (``POST /v1/messages``)."""

from __future__ import annotations

import email.utils
import json
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agent_kernel import Deltas, Request, Response
from agent_kernel.errors import InferenceError

from ._wire import ERROR_STATUS, Accumulator, Malformed, SSEDecoder, build_body, dumps, events_of_message

if TYPE_CHECKING:
    import httpx

__all__ = ["ANTHROPIC_VERSION", "DEFAULT_BASE_URL", "DEFAULT_MAX_TOKENS", "AnthropicExecutor"]

DEFAULT_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # the smallest output limit among current Claude models
_USER_AGENT = "agent-plugin-anthropic/0.1.0"
_EXCERPT = 300
_RETRYABLE_STATUS = frozenset({408, 409, 429})


def _retryable_status(status: int) -> bool:
    """408, 409, 429 and every 5xx (529 "overloaded" included) may succeed later."""
    return status in _RETRYABLE_STATUS or status >= 500


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
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
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "…"


def _describe(error: Any, request_id: Any) -> tuple[str, str | None]:
    """``"<type>: <message> (request id ...)"`` from an ``error`` object, and its type."""
    if not isinstance(error, dict):
        return _excerpt(dumps(error)), None
    kind = error.get("type") if isinstance(error.get("type"), str) else None
    message = error.get("message")
    text = _excerpt(message) if isinstance(message, str) and message else "(no message)"
    if kind:
        text = f"{kind}: {text}"
    if isinstance(request_id, str) and request_id:
        text += f" (request id {request_id})"
    return text, kind


def _body_error(body: bytes, request_id: str | None) -> tuple[str, str | None, Any]:
    """What an error body says: the documented ``{"type": "error", "error": {...}}`` or an excerpt."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return _excerpt(text) or "(empty body)", None, None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        detail, kind = _describe(data["error"], data.get("request_id") or request_id)
        return detail, kind, data["error"]
    return _excerpt(text), None, None


def _loop_token() -> object:
    """An object identifying the running event loop (an httpx client must not cross loops)."""
    import trio

    try:
        return trio.lowlevel.current_trio_token()
    except RuntimeError:  # not in trio: asyncio
        import asyncio

        return asyncio.get_running_loop()


class AnthropicExecutor:
    """Runs inferences for one Claude `model` through the Messages API.

    Answers stream as server-sent events: text reaches ``deltas.text`` as it
    arrives, ``input_json_delta`` fragments are reported with ``deltas.tool_call``
    and assembled per content block into complete tool calls, usage comes from
    ``message_start`` (input) and ``message_delta`` (output).

    Args:
        model: the model name sent to the API (the part after ``anthropic:``).
        api_key: sent as ``x-api-key``; defaults to ``ANTHROPIC_API_KEY``. Required
            for the default base URL only (a proxy may not need one).
        base_url: the API root, default ``ANTHROPIC_BASE_URL``, then
            ``https://api.anthropic.com``; requests go to ``<base_url>/v1/messages``
            (a base URL that already ends in ``/v1`` is not doubled).
        max_tokens: sent when the settings carry no ``max_tokens`` (the API requires it).
        settings: default body fields (``temperature``, ``top_k``, ``metadata``,
            ``thinking``...); the request's own settings override them.
        headers: extra HTTP headers (e.g. ``anthropic-beta``).
        anthropic_version: the ``anthropic-version`` header.
        timeout: seconds allowed for each network operation, or an ``httpx.Timeout``.
        stream: stream the answer (the default); False sends one plain request.
        transport: an ``httpx.AsyncBaseTransport`` (``httpx.MockTransport`` in tests).
        client: an ``httpx.AsyncClient`` you own; the executor then never closes it.

    Failures raise `InferenceError` (see the README's table): HTTP 408/409/429/5xx/529,
    timeouts, connection errors, a stream cut short and ``overloaded_error`` /
    ``api_error`` events are ``retryable``, with ``retry_after`` from the headers;
    other 4xx, ``invalid_request_error`` events and malformed answers are not.

    httpx is imported on first use. One client (connection pool) is kept per event
    loop; `aclose` releases it.
    """

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        settings: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        anthropic_version: str = ANTHROPIC_VERSION,
        timeout: float | httpx.Timeout = 600.0,
        stream: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.model = model
        self.base_url = (base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.url = self.base_url + ("/messages" if self.base_url.endswith("/v1") else "/v1/messages")
        self._api_key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY")
        self.max_tokens = max_tokens
        self.settings: Mapping[str, Any] = dict(settings or {})
        self.timeout = timeout
        self.stream = stream
        self._headers = {
            "user-agent": _USER_AGENT,
            "anthropic-version": anthropic_version,
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
        }
        if self._api_key:
            self._headers["x-api-key"] = self._api_key
        self._headers.update(headers or {})
        self._transport = transport
        self._user_client = client
        self._client: httpx.AsyncClient | None = None
        self._client_loop: object = None

    def __repr__(self) -> str:
        return f"AnthropicExecutor({self.model!r}, base_url={self.base_url!r})"

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
        """Close the connection pool this executor opened (never a client you passed in)."""
        client, self._client, self._client_loop = self._client, None, None
        if client is not None:
            await client.aclose()

    # ------------------------------------------------------------------ inference

    def body(self, request: Request) -> dict[str, Any]:
        """The JSON body this executor sends for `request`."""
        return build_body(self.model, request, max_tokens=self.max_tokens, defaults=self.settings, stream=self.stream)

    async def infer(self, request: Request, deltas: Deltas) -> Response:
        """Send `request`, stream the answer into `deltas`, return the `Response`.

        Cancelling the caller closes the HTTP stream.
        """
        if not self._api_key and self.base_url == DEFAULT_BASE_URL:
            raise InferenceError(
                "no Anthropic API key: set ANTHROPIC_API_KEY or pass Anthropic(api_key=...) "
                "(or point ANTHROPIC_BASE_URL / base_url= at a proxy that needs none)"
            )
        body = self.body(request)
        import httpx

        client = self._get_client()
        accumulator = Accumulator(deltas, max_tokens=body.get("max_tokens"))
        try:
            async with client.stream("POST", self.url, content=dumps(body).encode(), headers=self._headers) as answer:
                if answer.status_code >= 400:
                    await self._raise_for_status(answer)
                content_type = answer.headers.get("content-type", "")
                if content_type.startswith("text/event-stream"):
                    await self._read_stream(answer, accumulator)
                elif content_type.startswith("application/json"):
                    message = self._decode(await answer.aread())
                    if isinstance(message, dict) and message.get("type") == "error":  # some proxies answer 200
                        raise self._stream_error(message, answer.headers.get("request-id"), "object with HTTP 200")
                    for event in events_of_message(message):
                        accumulator.feed(event)
                else:
                    excerpt = _excerpt((await answer.aread()).decode("utf-8", "replace"))
                    raise InferenceError(
                        f"{self.url} answered HTTP {answer.status_code} with content-type "
                        f"{content_type or 'none'!r}, not a Messages API answer: {excerpt or '(empty body)'}",
                        status=answer.status_code,
                    )
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
            if isinstance(exc, httpx.ConnectError):
                what = f"could not connect to {self.url}"
            else:
                what = f"the connection to {self.url} failed"
                if accumulator.events:
                    what += f" after {accumulator.events} events"
            raise InferenceError(f"{what}: {type(exc).__name__}: {exc or 'no detail'}", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise InferenceError(f"request to {self.url} failed: {type(exc).__name__}: {exc}") from exc

    def _timeout_text(self) -> str:
        timeout = self.timeout
        return f"{timeout:g}s" if isinstance(timeout, (int, float)) else repr(timeout)

    async def _raise_for_status(self, answer: httpx.Response) -> None:
        status = answer.status_code
        detail, _, error = _body_error(await answer.aread(), answer.headers.get("request-id"))
        retryable = _retryable_status(status)
        details = error.get("details") if isinstance(error, dict) else None
        if isinstance(details, dict) and details.get("error_code") == "enforced_spend_limit_reached":
            retryable = False  # the monthly spend cap: retrying fails until the next month
        should = answer.headers.get("x-should-retry")
        if should in ("true", "false"):
            retryable = should == "true"
        retry_after = _retry_after(answer.headers)
        wait = f" (retry after {retry_after:g}s)" if retry_after is not None else ""
        raise InferenceError(
            f"{self.url} answered HTTP {f'{status} {answer.reason_phrase}'.strip()}: {detail}{wait}",
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

    async def _read_stream(self, answer: httpx.Response, accumulator: Accumulator) -> None:
        decoder = SSEDecoder()
        request_id = answer.headers.get("request-id")
        async for line in answer.aiter_lines():
            event = decoder.line(line)
            if event is not None and self._event(event, accumulator, request_id):
                return
        event = decoder.flush()  # a last event without its blank line
        if event is not None and self._event(event, accumulator, request_id):
            return
        if not accumulator.complete:
            raise InferenceError(
                f"the stream from {self.url} ended before the answer was complete "
                f"(no message_delta with a stop_reason, no message_stop, after {accumulator.events} events)",
                retryable=True,
                status=answer.status_code,
            )

    def _event(self, event: tuple[str, str], accumulator: Accumulator, request_id: str | None) -> bool:
        """Handle one SSE event; True after ``message_stop``."""
        name, data = event
        payload = self._decode(data)
        if name == "error" or (isinstance(payload, dict) and payload.get("type") == "error"):
            raise self._stream_error(payload, request_id, f"event mid-stream (after {accumulator.events} events)")
        accumulator.feed(payload)
        return accumulator.finished

    def _stream_error(self, payload: Any, request_id: str | None, where: str) -> InferenceError:
        """An error after HTTP 200 (an ``error`` event): classified by its type, as the equivalent HTTP status."""
        error = payload.get("error", payload) if isinstance(payload, dict) else payload
        rid = payload.get("request_id") if isinstance(payload, dict) else None
        detail, kind = _describe(error, rid or request_id)
        status = ERROR_STATUS.get(kind or "")
        # The request was accepted and failed mid-way: transient unless its type says otherwise.
        retryable = _retryable_status(status) if status is not None else True
        return InferenceError(
            f"{self.url} sent an error {where}: {detail}",
            retryable=retryable,
            status=status,
        )
