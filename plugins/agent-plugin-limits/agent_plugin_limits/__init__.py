"""agent-plugin-limits: budgets and stop rules for agent-kernel runs.

    from agent_kernel import Agent
    from agent_plugin_limits import Limits

    agent = Agent(model="openai:gpt-4o-mini", plugins=[Limits(max_steps=20, max_tool_calls=50)])
    outcome = await agent.run("...")
    if outcome.reason == "stopped":
        print(outcome.stop.code, outcome.stop.detail)   # e.g. "limit.steps"

See `Limits` for the rules and README.md for the whole story.
"""

from ._limits import CODES as CODES
from ._limits import Limits as Limits
from ._limits import estimate_tokens as estimate_tokens

__version__ = "0.1.0"

__all__ = ["CODES", "Limits", "estimate_tokens"]
