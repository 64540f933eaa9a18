"""agent-plugin-approval: human-in-the-loop approval of tool calls for agent-kernel.

    from agent_kernel import Agent, Approve
    from agent_plugin_approval import Approval
    from agent_plugin_approval.policies import require_approval

    agent = Agent(model="openai:gpt-4o-mini", plugins=[tools, Approval(require_approval("shell", "write_*"))])
    outcome = await agent.run("Clean up the build directory")
    if outcome.reason == "suspended":
        for request in outcome.pending:
            print(request.tool, request.call.arguments, request.reason)
        outcome = await agent.resume(outcome.run_id, decisions={r.id: Approve() for r in outcome.pending})

`Approval(policy, ...)` is the plugin; `agent_plugin_approval.policies` holds the
policies (`require_approval`, `pattern`, `threshold`, `risk`, `exec_policy`, and the
composites `all_of`, `any_of`, `first_match`). See README.md for every rule.
"""

from attrs import frozen

from . import policies as policies
from ._approval import Approval as Approval
from ._approval import ApprovalMemory as ApprovalMemory
from ._approval import Remember as Remember
from ._approval import Remembered as Remembered
from ._approval import fingerprint as fingerprint
from ._decision import Decision as Decision


@frozen
class Settings:
    """``[plugins.approval]`` in ``agent.toml``: ask before running the tools matching `require`.

    Attributes:
        require: tool-name globs (``["shell", "write_*"]``), see `policies.require_approval`.
        reason: the reason shown with each request.
        remember: remember a decision for identical calls of the same tool in the run.
    """

    require: tuple[str, ...]
    reason: str = ""
    remember: bool = False

    def plugin(self) -> Approval:
        """The configured `Approval` plugin."""
        return Approval(policies.require_approval(*self.require, reason=self.reason), remember=self.remember)


__version__ = "0.1.0"

__all__ = ["Settings", "Approval", "ApprovalMemory", "Decision", "Remember", "Remembered", "fingerprint", "policies"]
