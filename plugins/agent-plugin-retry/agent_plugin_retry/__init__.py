"""agent-plugin-retry: retries, backoff and model fallback for agent-kernel.

    from agent_kernel import Agent
    from agent_plugin_retry import Retry

    agent = Agent(model="openai:gpt-4o", plugins=[Retry(4, fallback=["openai:gpt-4o-mini"])])

See `Retry` for the rules and README.md for the whole story.
"""

from typing import Literal

from attrs import frozen

from ._retry import Backoff as Backoff
from ._retry import Retry as Retry
from ._retry import is_retryable as is_retryable


@frozen
class Settings:
    """``[plugins.retry]`` in ``agent.toml``: the arguments of `Retry`.

    ``tools = ["*"]`` retries every idempotent tool; a list of names retries those.
    """

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total: float = 120.0
    jitter: Literal["full", "equal", "none"] = "full"
    fallback: tuple[str, ...] = ()
    fallback_attempts: int | None = None
    tools: tuple[str, ...] = ()

    def plugin(self) -> Retry:
        """The configured `Retry` plugin."""
        return Retry(
            self.max_attempts,
            base_delay=self.base_delay,
            max_delay=self.max_delay,
            max_total=self.max_total,
            jitter=self.jitter,
            fallback=self.fallback,
            fallback_attempts=self.fallback_attempts,
            tools=True if self.tools == ("*",) else self.tools,
        )


__version__ = "0.1.0"

__all__ = ["Settings", "Backoff", "Retry", "is_retryable"]
