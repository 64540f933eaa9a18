"""`Anthropic`: the plugin object for configuring the executor in code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agent_kernel import ModelRegistrar, hookimpl

from ._executor import ANTHROPIC_VERSION, DEFAULT_MAX_TOKENS, AnthropicExecutor
from .plugin import PREFIX

if TYPE_CHECKING:
    import httpx


class Anthropic:
    """Serve ``anthropic:<model>`` (or ``<prefix><model>``) with explicit settings.

    Usage::

        Agent(model="anthropic:claude-sonnet-4-5", plugins=[Anthropic(max_tokens=8192), Toolbox([add])])
        Agent(model="proxy:claude-haiku-4-5", plugins=[Anthropic(base_url="http://127.0.0.1:4000", prefix="proxy:")])

    Args:
        api_key: sent as ``x-api-key``; defaults to ``ANTHROPIC_API_KEY``.
        base_url: the API root; defaults to ``ANTHROPIC_BASE_URL``, then
            ``https://api.anthropic.com``.
        transport: an ``httpx.AsyncBaseTransport`` for every request
            (``httpx.MockTransport`` in tests).
        max_tokens: the ``max_tokens`` sent when the request's settings have none.
        settings: default body fields (``temperature``, ``top_k``, ``metadata``...);
            ``Agent(settings=...)`` overrides them per key, None drops a key.
        headers: extra HTTP headers (e.g. ``{"anthropic-beta": "..."}``).
        anthropic_version: the ``anthropic-version`` header (``2023-06-01``).
        timeout: seconds allowed per network operation, or an ``httpx.Timeout``.
        stream: stream answers (the default) or send plain requests.
        client: an ``httpx.AsyncClient`` you own (then `transport` and `timeout` are its own).
        prefix: the model-string prefix to serve. With the default ``"anthropic:"``
            this plugin replaces the autoloaded ``anthropic`` entry point's registration.
        name: the plugin name (default ``anthropic-config``, or
            ``anthropic-config[<prefix>]`` for another prefix).

    Executors are made on first use of a model string and kept; `aclose` closes
    their connection pools.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        settings: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        anthropic_version: str = ANTHROPIC_VERSION,
        timeout: float | httpx.Timeout = 600.0,
        stream: bool = True,
        client: httpx.AsyncClient | None = None,
        prefix: str = PREFIX,
        name: str | None = None,
    ) -> None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
        self.api_key = api_key
        self.base_url = base_url
        self.prefix = prefix
        self.name = name or ("anthropic-config" if prefix == PREFIX else f"anthropic-config[{prefix.rstrip(':')}]")
        self.options: dict[str, Any] = {
            "transport": transport,
            "max_tokens": max_tokens,
            "settings": settings,
            "headers": headers,
            "anthropic_version": anthropic_version,
            "timeout": timeout,
            "stream": stream,
            "client": client,
        }
        self.executors: dict[str, AnthropicExecutor] = {}

    def __repr__(self) -> str:
        return f"Anthropic(base_url={self.base_url!r}, prefix={self.prefix!r})"

    def executor(self, model: str) -> AnthropicExecutor:
        """The executor for `model` (the part after the prefix), made on first use."""
        found = self.executors.get(model)
        if found is None:
            found = self.executors[model] = AnthropicExecutor(
                model, api_key=self.api_key, base_url=self.base_url, **self.options
            )
        return found

    async def aclose(self) -> None:
        """Close every executor's connection pool."""
        for executor in self.executors.values():
            await executor.aclose()

    @hookimpl
    def agent_register_models(self, models: ModelRegistrar) -> None:
        models.add_prefix(self.prefix, self.executor)
