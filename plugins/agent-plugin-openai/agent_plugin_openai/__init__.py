"""agent-plugin-openai: OpenAI-compatible Chat Completions for agent-kernel.

``Agent(model="openai:<model>")`` works once this distribution is installed (the
``openai`` entry point reads ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``). Pass
`OpenAI(base_url=..., api_key=...)` in ``plugins=[...]`` to configure it in code, or
use `OpenAIExecutor` directly.
"""

import os
from typing import Any

from attrs import Factory, frozen

from ._executor import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from ._executor import OpenAIExecutor as OpenAIExecutor
from ._plugin import OpenAI as OpenAI
from ._wire import INVALID_ARGUMENTS as INVALID_ARGUMENTS


@frozen
class Settings:
    """``[plugins.openai]`` in ``agent.toml``: the arguments of `OpenAI`.

    The key is never in the file: `api_key_env` names the environment variable holding it.
    """

    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    prefix: str = "openai:"
    timeout: float = 600.0
    settings: dict[str, Any] = Factory(dict)
    headers: dict[str, str] = Factory(dict)
    stream: bool = True
    stream_usage: bool = True
    #: The tool choice sent instead of the kernel's default "auto": "none",
    #: "required" or a tool name (see `OpenAIExecutor`).
    tool_choice: str | None = None

    def plugin(self) -> OpenAI:
        """The configured `OpenAI` plugin (the key read from `api_key_env` now)."""
        return OpenAI(
            self.base_url,
            os.environ.get(self.api_key_env),
            prefix=self.prefix,
            timeout=self.timeout,
            settings=self.settings,
            headers=self.headers,
            stream=self.stream,
            stream_usage=self.stream_usage,
            tool_choice=self.tool_choice,
        )


__version__ = "0.1.0"

__all__ = ["Settings", "DEFAULT_BASE_URL", "INVALID_ARGUMENTS", "OpenAI", "OpenAIExecutor"]
