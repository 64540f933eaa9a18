"""agent-plugin-tools: type-hinted Python functions as tools for agent-kernel.

    from agent_kernel import Agent
    from agent_plugin_tools import Toolbox

    def add(a: int, b: int) -> int:
        \"\"\"Add two integers.

        Args:
            a: the first addend.
            b: the second addend.
        \"\"\"
        return a + b

    agent = Agent(model="openai:gpt-4o-mini", plugins=[Toolbox([add], name="math")])

See `Toolbox` for what is supported and how calls run.
"""

from ._strategies import Parallel as Parallel
from ._strategies import Sequential as Sequential
from ._tool import Tool as Tool
from ._tool import ToolDefinitionError as ToolDefinitionError
from ._tool import ToolOptions as ToolOptions
from ._tool import function_schema as function_schema
from ._tool import tool as tool
from ._toolbox import Toolbox as Toolbox
from ._toolbox import add_function as add_function

__version__ = "0.1.0"

__all__ = [
    "Parallel",
    "Sequential",
    "Tool",
    "ToolDefinitionError",
    "ToolOptions",
    "Toolbox",
    "add_function",
    "function_schema",
    "tool",
]
