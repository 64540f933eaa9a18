"""`OpenAI`: the plugin object for configuring the executor in code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agent_kernel import ModelRegistrar, ToolCall, hookimpl, patches

from .plugin import PREFIX, invalid_arguments_block

if TYPE_CHECKING:
    import httpx

    from ._executor import OpenAIExecutor


class OpenAI:
    """Serve ``openai:<model>`` (or ``<prefix><model>``) from an explicit endpoint.

    Usage::

        Agent(model="openai:qwen2.5", plugins=[OpenAI(base_url="http://127.0.0.1:8000/v1")])
        Agent(model="local:gemma", plugins=[OpenAI(base_url=..., prefix="local:")])

    Args:
        base_url: the API root; defaults to ``OPENAI_BASE_URL``, then OpenAI's.
        api_key: defaults to ``OPENAI_API_KEY``.
        prefix: the model-string prefix to serve. With the default ``"openai:"`` this
            plugin replaces the autoloaded ``openai`` entry point's registration.
        name: the plugin name (default ``openai-config``, or
            ``openai-config[<prefix>]`` for another prefix).
        **options: passed on to every `OpenAIExecutor` (``timeout``, ``settings``,
            ``headers``, ``stream``, ``stream_usage``, ``tool_choice``, ``transport``,
            ``client``).

    Executors are made on first use of a model string and kept; `aclose` closes
    their connection pools.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        prefix: str = PREFIX,
        name: str | None = None,
        timeout: float | httpx.Timeout = 600.0,
        settings: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = True,
        stream_usage: bool = True,
        tool_choice: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.prefix = prefix
        self.name = name or ("openai-config" if prefix == PREFIX else f"openai-config[{prefix.rstrip(':')}]")
        self.options: dict[str, Any] = {
            "timeout": timeout,
            "settings": settings,
            "headers": headers,
            "stream": stream,
            "stream_usage": stream_usage,
            "tool_choice": tool_choice,
            "transport": transport,
            "client": client,
        }
        self.executors: dict[str, OpenAIExecutor] = {}

    def __repr__(self) -> str:
        return f"OpenAI(base_url={self.base_url!r}, prefix={self.prefix!r})"

    def executor(self, model: str) -> OpenAIExecutor:
        """The executor for `model` (the part after the prefix), made on first use."""
        found = self.executors.get(model)
        if found is None:
            from ._executor import OpenAIExecutor

            found = self.executors[model] = OpenAIExecutor(
                model, base_url=self.base_url, api_key=self.api_key, **self.options
            )
        return found

    async def aclose(self) -> None:
        """Close every executor's connection pool."""
        for executor in self.executors.values():
            await executor.aclose()

    @hookimpl
    def agent_register_models(self, models: ModelRegistrar) -> None:
        models.add_prefix(self.prefix, self.executor)

    @hookimpl
    def agent_before_tool_execute(self, call: ToolCall) -> list[patches.Patch] | None:
        return invalid_arguments_block(call)
