"""agent-plugin-openai: OpenAI-compatible Chat Completions for agent-kernel.

``Agent(model="openai:<model>")`` works once this distribution is installed (the
``openai`` entry point reads ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``). Pass
`OpenAI(base_url=..., api_key=...)` in ``plugins=[...]`` to configure it in code, or
use `OpenAIExecutor` directly.
"""

from ._executor import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from ._executor import OpenAIExecutor as OpenAIExecutor
from ._plugin import OpenAI as OpenAI
from ._wire import INVALID_ARGUMENTS as INVALID_ARGUMENTS

__version__ = "0.1.0"

__all__ = ["DEFAULT_BASE_URL", "INVALID_ARGUMENTS", "OpenAI", "OpenAIExecutor"]
