"""agent-plugin-retry: retries, backoff and model fallback for agent-kernel.

    from agent_kernel import Agent
    from agent_plugin_retry import Retry

    agent = Agent(model="openai:gpt-4o", plugins=[Retry(4, fallback=["openai:gpt-4o-mini"])])

See `Retry` for the rules and README.md for the whole story.
"""

from ._retry import Backoff as Backoff
from ._retry import Retry as Retry
from ._retry import is_retryable as is_retryable

__version__ = "0.1.0"

__all__ = ["Backoff", "Retry", "is_retryable"]
