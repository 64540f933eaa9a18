"""agent-plugin-anthropic: the Anthropic Messages API (Claude) for agent-kernel.

``Agent(model="anthropic:<model>")`` works once this distribution is installed (the
``anthropic`` entry point reads ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``).
Pass `Anthropic(api_key=..., base_url=..., max_tokens=...)` in ``plugins=[...]`` to
configure it in code, or use `AnthropicExecutor` directly.
`agent_plugin_anthropic.testing.FakeAnthropic` serves scripted answers in the
documented wire format, for tests without network.
"""

from ._executor import ANTHROPIC_VERSION as ANTHROPIC_VERSION
from ._executor import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from ._executor import DEFAULT_MAX_TOKENS as DEFAULT_MAX_TOKENS
from ._executor import AnthropicExecutor as AnthropicExecutor
from ._plugin import Anthropic as Anthropic
from ._wire import STOP_REASONS as STOP_REASONS
from ._wire import build_body as build_body

__version__ = "0.1.0"

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_TOKENS",
    "STOP_REASONS",
    "Anthropic",
    "AnthropicExecutor",
    "build_body",
]
