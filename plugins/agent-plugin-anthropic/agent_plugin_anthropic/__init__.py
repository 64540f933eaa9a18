"""agent-plugin-anthropic: the Anthropic Messages API (Claude) for agent-kernel.

``Agent(model="anthropic:<model>")`` works once this distribution is installed (the
``anthropic`` entry point reads ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``).
Pass `Anthropic(api_key=..., base_url=..., max_tokens=...)` in ``plugins=[...]`` to
configure it in code, or use `AnthropicExecutor` directly.
`agent_plugin_anthropic.testing.FakeAnthropic` serves scripted answers in the
documented wire format, for tests without network.
"""

import os
from typing import Any

from attrs import Factory, frozen

from ._executor import ANTHROPIC_VERSION as ANTHROPIC_VERSION
from ._executor import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from ._executor import DEFAULT_MAX_TOKENS as DEFAULT_MAX_TOKENS
from ._executor import AnthropicExecutor as AnthropicExecutor
from ._plugin import Anthropic as Anthropic
from ._wire import STOP_REASONS as STOP_REASONS
from ._wire import build_body as build_body


@frozen
class Settings:
    """``[plugins.anthropic]`` in ``agent.toml``: the arguments of `Anthropic`.

    The key is never in the file: `api_key_env` names the environment variable holding it.
    """

    base_url: str | None = None
    api_key_env: str = "ANTHROPIC_API_KEY"
    prefix: str = "anthropic:"
    max_tokens: int = DEFAULT_MAX_TOKENS
    anthropic_version: str = ANTHROPIC_VERSION
    timeout: float = 600.0
    settings: dict[str, Any] = Factory(dict)
    headers: dict[str, str] = Factory(dict)
    stream: bool = True

    def plugin(self) -> Anthropic:
        """The configured `Anthropic` plugin (the key read from `api_key_env` now)."""
        return Anthropic(
            os.environ.get(self.api_key_env),
            self.base_url,
            prefix=self.prefix,
            max_tokens=self.max_tokens,
            anthropic_version=self.anthropic_version,
            timeout=self.timeout,
            settings=self.settings,
            headers=self.headers,
            stream=self.stream,
        )


__version__ = "0.1.0"

__all__ = [
    "Settings",
    "ANTHROPIC_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_TOKENS",
    "STOP_REASONS",
    "Anthropic",
    "AnthropicExecutor",
    "build_body",
]
