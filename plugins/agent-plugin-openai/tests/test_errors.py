"""Failures become `InferenceError`s that say what the server answered, classified for retry."""

from __future__ import annotations

import email.utils
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agent_kernel import Message, Request
from agent_kernel.errors import InferenceError
from agent_plugin_openai import OpenAIExecutor
from agent_plugin_openai.testing import FakeServer, sse, text_chunks

BASE = "http://fake.test/v1"
URL = BASE + "/chat/completions"


class Sink:
    def text(self, text: str) -> None:
        pass

    def tool_call(self, index: int, call_id: str, name: str, arguments: str) -> None:
        pass


REQUEST = Request("openai:fake", (Message("user", "hello"),))


def fail(run: Any, answer: Any, **options: Any) -> InferenceError:
    server = FakeServer(answer)

    async def main() -> Any:
        return await OpenAIExecutor("m", base_url=BASE, api_key="k", transport=server.transport, **options).infer(
            REQUEST, Sink()
        )

    with pytest.raises(InferenceError) as info:
        run(main)
    return info.value


def test_429_is_retryable_and_honours_retry_after(run: Any) -> None:
    error = fail(
        run,
        httpx.Response(
            429,
            headers={"retry-after": "2"},
            json={
                "error": {
                    "message": "Rate limit reached for requests",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }
            },
        ),
    )
    assert error.retryable
    assert error.retry_after == 2.0
    assert error.status == 429
    assert str(error) == (
        f"{URL} answered HTTP 429 Too Many Requests: Rate limit reached for requests "
        "(type=requests, code=rate_limit_exceeded) (retry after 2s)"
    )


def test_retry_after_ms_wins_and_dates_are_understood(run: Any) -> None:
    error = fail(run, httpx.Response(429, headers={"retry-after-ms": "1500", "retry-after": "9"}, text="slow down"))
    assert error.retry_after == 1.5
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    error = fail(run, httpx.Response(503, headers={"retry-after": when}, text="maintenance"))
    assert error.retryable and error.status == 503
    assert error.retry_after is not None and 25 <= error.retry_after <= 31


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_5xx_and_408_are_retryable(run: Any, status: int) -> None:
    error = fail(run, httpx.Response(status, text="upstream exploded\n  at line 3"))
    assert error.retryable
    assert error.retry_after is None
    assert error.status == status
    assert f"HTTP {status}" in str(error)
    assert "upstream exploded at line 3" in str(error)  # an excerpt of the body, whitespace folded


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (
            400,
            {
                "error": {
                    "message": "Invalid 'messages[2].content': expected a string, got null.",
                    "type": "invalid_request_error",
                }
            },
            "Invalid 'messages[2].content'",
        ),
        (
            401,
            {"error": {"message": "Incorrect API key provided: k.", "code": "invalid_api_key"}},
            "Incorrect API key provided",
        ),
        (404, {"detail": "Not Found"}, "404 Not Found: Not Found"),
        (422, {"detail": [{"loc": ["body", "messages"], "msg": "field required"}]}, '"msg":"field required"'),
        (422, {"error": "unprocessable"}, "unprocessable"),
    ],
)
def test_other_4xx_are_not_retryable(run: Any, status: int, body: dict[str, Any], said: str) -> None:
    error = fail(run, httpx.Response(status, json=body))
    assert not error.retryable
    assert error.status == status
    assert str(error).startswith(f"{URL} answered HTTP {status} ")
    assert said in str(error)


def test_x_should_retry_overrides_the_status_rule(run: Any) -> None:
    assert not fail(run, httpx.Response(500, headers={"x-should-retry": "false"}, text="no")).retryable
    assert fail(run, httpx.Response(409, headers={"x-should-retry": "true"}, text="conflict")).retryable


def test_long_bodies_are_cut(run: Any) -> None:
    error = fail(run, httpx.Response(500, text="x" * 5000))
    assert len(str(error)) < 500
    assert str(error).endswith("…")


def test_empty_error_body(run: Any) -> None:
    assert "(empty body)" in str(fail(run, httpx.Response(502)))


def test_transport_timeout_is_retryable(run: Any) -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    error = fail(run, timeout, timeout=1.5)
    assert error.retryable
    assert str(error) == f"{URL} timed out (ReadTimeout) after 1.5s"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_real_read_timeout_is_retryable(run: Any, silent_port: int) -> None:
    base = f"http://127.0.0.1:{silent_port}/v1"

    async def main() -> Any:
        return await OpenAIExecutor("m", base_url=base, timeout=0.3).infer(REQUEST, Sink())

    started = time.monotonic()
    with pytest.raises(InferenceError, match=r"timed out \(ReadTimeout\) after 0.3s") as info:
        run(main)
    assert info.value.retryable
    assert time.monotonic() - started < 5


def test_connection_refused_is_retryable(run: Any, closed_port: int) -> None:
    base = f"http://127.0.0.1:{closed_port}/v1"

    async def main() -> Any:
        return await OpenAIExecutor("m", base_url=base).infer(REQUEST, Sink())

    with pytest.raises(InferenceError, match=rf"could not connect to {base}/chat/completions: ConnectError") as info:
        run(main)
    assert info.value.retryable
    assert info.value.status is None


def test_bad_base_url_is_not_retryable(run: Any) -> None:
    async def main() -> Any:
        return await OpenAIExecutor("m", base_url="ftp://example.invalid/v1").infer(REQUEST, Sink())

    with pytest.raises(InferenceError, match=r"cannot send to ftp://example.invalid/v1/chat/completions") as info:
        run(main)
    assert not info.value.retryable


def test_openai_without_a_key_says_how_to_fix_it(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    async def main() -> Any:
        return await OpenAIExecutor("gpt-4o-mini").infer(REQUEST, Sink())

    with pytest.raises(InferenceError, match="set OPENAI_API_KEY") as info:
        run(main)
    assert not info.value.retryable


def test_environment_gives_base_url_and_key(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env.test/v2/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    server = FakeServer(sse(*text_chunks("ok")))

    async def main() -> Any:
        return await OpenAIExecutor("m", transport=server.transport).infer(REQUEST, Sink())

    assert run(main).message.content == "ok"
    assert str(server.requests[0].url) == "http://env.test/v2/chat/completions"
    assert server.requests[0].headers["authorization"] == "Bearer sk-from-env"
    explicit = OpenAIExecutor("m", base_url="http://arg.test/v1", api_key="sk-arg")
    assert explicit.url == "http://arg.test/v1/chat/completions"
    assert "sk-arg" not in repr(explicit)
