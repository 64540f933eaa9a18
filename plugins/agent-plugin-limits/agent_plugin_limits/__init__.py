"""agent-plugin-limits: budgets and stop rules for agent-kernel runs.

    from agent_kernel import Agent
    from agent_plugin_limits import Limits

    agent = Agent(model="openai:gpt-4o-mini", plugins=[Limits(max_steps=20, max_tool_calls=50)])
    outcome = await agent.run("...")
    if outcome.reason == "stopped":
        print(outcome.stop.code, outcome.stop.detail)   # e.g. "limit.steps"

See `Limits` for the rules and README.md for the whole story.
"""

from attrs import Factory, asdict, frozen

from ._limits import CODES as CODES
from ._limits import Limits as Limits
from ._limits import estimate_tokens as estimate_tokens


@frozen
class Settings:
    """``[plugins.limits]`` in ``agent.toml``: the arguments of `Limits` (see it for each rule)."""

    max_steps: int | None = None
    max_tool_calls: int | None = None
    max_requests: int | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_total_tokens: int | None = None
    max_calls_per_tool: dict[str, int] = Factory(dict)
    max_duration: float | None = None
    max_cost: float | None = None
    prices: dict[str, tuple[float, float]] = Factory(dict)
    loop_detection: int | None = None
    max_consecutive_tool_errors: int | None = None
    stop_after_tools: tuple[str, ...] = ()
    stop_on_content: str | None = None
    chars_per_token: float = 4.0

    def plugin(self) -> Limits:
        """The configured `Limits` plugin."""
        return Limits(**asdict(self, recurse=False))


__version__ = "0.1.0"

__all__ = ["Settings", "CODES", "Limits", "estimate_tokens"]
