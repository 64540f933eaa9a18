"""agent-plugin-handoff: sub-agents as tools and ``transfer_to_agent`` handoffs for agent-kernel.

    from agent_kernel import Agent
    from agent_plugin_handoff import Handoff, Peer, SubAgent

    researcher = SubAgent("researcher", "Finds facts.", model="openai:gpt-4o-mini", plugins=[...])
    agent = Agent(model="openai:gpt-4o", plugins=[Handoff([researcher], max_depth=3)])

See `Handoff` for the rules and README.md for the whole story.
"""

from ._handoff import ACTIVE as ACTIVE
from ._handoff import DEPTH as DEPTH
from ._handoff import MAX_DEPTH as MAX_DEPTH
from ._handoff import PARENT as PARENT
from ._handoff import TRANSFER_TOOL as TRANSFER_TOOL
from ._handoff import Handoff as Handoff
from ._handoff import Peer as Peer
from ._handoff import SubAgent as SubAgent
from ._handoff import child_run_id as child_run_id

__version__ = "0.1.0"

__all__ = ["ACTIVE", "DEPTH", "MAX_DEPTH", "PARENT", "TRANSFER_TOOL", "Handoff", "Peer", "SubAgent", "child_run_id"]
