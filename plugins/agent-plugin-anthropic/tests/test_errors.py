"""Failures become `InferenceError`s that say what the server answered, classified for retry."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_kernel import Message, Request
from agent_kernel.errors import InferenceError
from agent_plugin_anthropic import AnthropicExecutor
from agent_plugin_anthropic.testing import FakeAnthropic, RecordingDeltas, error_event, message_start, sse

URL = "https://api.anthropic.com/v1/messages"
REQUEST = Request("anthropic:claude-x", (Message("user", "hello"),))


def fail(run: Any, answer: Any, deltas: RecordingDeltas | None = None, **options: Any) -> InferenceError:
    server = FakeAnthropic(answer)
    options.setdefault("api_key", "sk-ant-test")
    options.setdefault("transport", server.transport)
    executor = AnthropicExecutor("claude-x", **options)

    async def main() -> Any:
        return await executor.infer(REQUEST, deltas or RecordingDeltas())

    with pytest.raises(InferenceError) as info:
        run(main)
    return info.value


def error_body(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message, **extra}, "request_id": "req_x"}


# ----------------------------------------------------------------------------- saved answers


def test_429_is_retryable_and_honours_retry_after(run: Any, fixture: Callable[[str], Path]) -> None:
    error = fail(run, fixture("rate_limited_429.http"))
    assert error.retryable
    assert error.retry_after == 17.0
    assert error.status == 429
    assert str(error) == (
        f"{URL} answered HTTP 429 Too Many Requests: rate_limit_error: This request would exceed the rate limit "
        "for your organization of 50 requests per minute. For details, refer to: "
        "https://docs.claude.com/en/api/rate-limits. (request id req_011CRateLimit429xyz) (retry after 17s)"
    )


def test_529_overloaded_is_retryable(run: Any, fixture: Callable[[str], Path]) -> None:
    error = fail(run, fixture("overloaded_529.http"))
    assert error.retryable
    assert error.status == 529
    assert error.retry_after is None
    assert str(error) == f"{URL} answered HTTP 529: overloaded_error: Overloaded (request id req_011COverloaded529ab)"


def test_400_invalid_request_is_not_retryable(run: Any, fixture: Callable[[str], Path]) -> None:
    error = fail(run, fixture("invalid_request_400.http"))
    assert not error.retryable
    assert error.status == 400
    assert str(error) == (
        f"{URL} answered HTTP 400 Bad Request: invalid_request_error: messages: roles must alternate between "
        '"user" and "assistant", but found multiple "user" roles in a row (request id req_011CInvalid400cd)'
    )


def test_error_event_mid_stream_is_retryable_overloaded(run: Any, fixture: Callable[[str], Path]) -> None:
    deltas = RecordingDeltas()
    error = fail(run, fixture("error_mid_stream.sse"), deltas)
    assert deltas.texts == ["Once upon", " a time"]  # streamed before the error
    assert error.retryable
    assert error.status == 529  # what overloaded_error means outside a stream
    assert str(error) == (
        f"{URL} sent an error event mid-stream (after 4 events): overloaded_error: Overloaded (request id req_fake)"
    )


# ----------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("kind", "status", "retryable"),
    [
        ("overloaded_error", 529, True),
        ("api_error", 500, True),
        ("rate_limit_error", 429, True),
        ("timeout_error", 504, True),
        ("invalid_request_error", 400, False),
        ("authentication_error", 401, False),
        ("permission_error", 403, False),
        ("request_too_large", 413, False),
        ("a_future_error", None, True),
    ],
)
def test_error_events_by_type(run: Any, kind: str, status: int | None, retryable: bool) -> None:
    error = fail(run, sse(message_start(), error_event(kind, "Something happened")))
    assert (error.status, error.retryable) == (status, retryable)
    assert f"{kind}: Something happened" in str(error)


@pytest.mark.parametrize(("status", "retryable"), [(408, True), (409, True), (500, True), (502, True), (503, True)])
def test_server_side_statuses_are_retryable(run: Any, status: int, retryable: bool) -> None:
    error = fail(run, httpx.Response(status, json=error_body("api_error", "Internal server error")))
    assert (error.status, error.retryable) == (status, retryable)
    assert "api_error: Internal server error (request id req_x)" in str(error)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
    ],
)
def test_client_errors_are_not_retryable(run: Any, status: int, kind: str) -> None:
    error = fail(run, httpx.Response(status, json=error_body(kind, "No.")))
    assert (error.status, error.retryable) == (status, False)
    assert f"HTTP {status} " in str(error) and f"{kind}: No." in str(error)


def test_the_monthly_spend_cap_429_is_not_retryable(run: Any) -> None:
    body = error_body(
        "rate_limit_error", "You have reached your usage limit.", details={"error_code": "enforced_spend_limit_reached"}
    )
    error = fail(run, httpx.Response(429, json=body))
    assert error.status == 429 and not error.retryable


def test_x_should_retry_overrides_the_status(run: Any) -> None:
    assert fail(run, httpx.Response(400, headers={"x-should-retry": "true"}, json=error_body("x", "y"))).retryable
    assert not fail(run, httpx.Response(503, headers={"x-should-retry": "false"}, json=error_body("x", "y"))).retryable


def test_retry_after_ms_wins_and_dates_are_understood(run: Any) -> None:
    error = fail(run, httpx.Response(429, headers={"retry-after-ms": "1500", "retry-after": "9"}, text="slow down"))
    assert error.retry_after == 1.5
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    error = fail(run, httpx.Response(529, headers={"retry-after": when}, text="busy"))
    assert error.retryable and error.retry_after is not None and 25 <= error.retry_after <= 31


def test_a_body_that_is_not_the_documented_error_shape_is_quoted(run: Any) -> None:
    html = "<html><body><h1>413 Request Entity Too Large</h1></body></html>"
    error = fail(run, httpx.Response(413, headers={"content-type": "text/html"}, text=html))
    assert not error.retryable
    assert str(error) == f"{URL} answered HTTP 413 Request Entity Too Large: {html}"
    assert str(fail(run, httpx.Response(500))) == f"{URL} answered HTTP 500 Internal Server Error: (empty body)"


def test_a_200_that_is_not_an_answer(run: Any) -> None:
    error = fail(run, httpx.Response(200, headers={"content-type": "text/html"}, text="<p>captive portal</p>"))
    assert not error.retryable
    assert "answered HTTP 200 with content-type 'text/html', not a Messages API answer: <p>captive portal</p>" in str(
        error
    )


# ----------------------------------------------------------------------------- network


def test_a_timeout_is_retryable(run: Any) -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    error = fail(run, hang, timeout=5.0)
    assert error.retryable
    assert str(error) == f"{URL} timed out (ReadTimeout) after 5s"


def test_nothing_listening_is_retryable(run: Any, closed_port: int) -> None:
    error = fail(run, None, base_url=f"http://127.0.0.1:{closed_port}", transport=None)
    assert error.retryable
    assert str(error).startswith(f"could not connect to http://127.0.0.1:{closed_port}/v1/messages: ConnectError")


class Breaks(httpx.AsyncByteStream):
    """Sends some events, then the connection drops."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


def test_a_connection_that_drops_mid_stream_is_retryable(run: Any, fixture: Callable[[str], Path]) -> None:
    data = fixture("text_answer.sse").read_bytes()
    data = data[: data.index(b"event: content_block_stop")]
    answer = httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Breaks(data))
    deltas = RecordingDeltas()
    error = fail(run, answer, deltas)
    assert error.retryable
    assert str(error) == (
        f"the connection to {URL} failed after 7 events: RemoteProtocolError: "
        "peer closed connection without sending complete message body"
    )
    assert deltas.texts == ["Hello", "!", " How can I help", " you today?"]


def test_no_key_for_the_anthropic_api_fails_before_sending(run: Any) -> None:
    server = FakeAnthropic()
    error = fail(run, None, api_key=None, transport=server.transport)
    assert not error.retryable
    assert "no Anthropic API key: set ANTHROPIC_API_KEY or pass Anthropic(api_key=...)" in str(error)
    assert server.requests == []


def test_a_proxy_needs_no_key(run: Any, fixture: Callable[[str], Path]) -> None:
    server = FakeAnthropic(fixture("text_answer.sse"))
    executor = AnthropicExecutor("claude-x", base_url="http://proxy.test", transport=server.transport)

    async def main() -> Any:
        return await executor.infer(REQUEST, RecordingDeltas())

    assert run(main).message.content == "Hello! How can I help you today?"
    assert "x-api-key" not in server.requests[0].headers


def test_an_error_object_with_http_200_when_not_streaming(run: Any) -> None:
    error = fail(run, httpx.Response(200, json=error_body("overloaded_error", "Overloaded")), stream=False)
    assert error.retryable and error.status == 529
    assert str(error) == f"{URL} sent an error object with HTTP 200: overloaded_error: Overloaded (request id req_x)"
