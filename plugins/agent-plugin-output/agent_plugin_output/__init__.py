"""agent-plugin-output: typed, validated final output for agent-kernel runs.

    import attrs
    from agent_kernel import Agent
    from agent_plugin_output import TypedOutput

    @attrs.frozen
    class City:
        name: str
        population: int

    output = TypedOutput(City)
    agent = Agent(model="openai:gpt-4o-mini", plugins=[output])
    outcome = await agent.run("What is the largest city in France?")
    city = output.value(outcome)          # a City, or None

See `TypedOutput` for the modes and rules, and README.md for the whole story.
"""

from ._output import ACCEPTED as ACCEPTED
from ._output import ALREADY as ALREADY
from ._output import OutputInvalid as OutputInvalid
from ._output import TypedOutput as TypedOutput
from ._output import output_of as output_of
from ._schema import UnsupportedSchema as UnsupportedSchema
from ._schema import check as check_json
from ._schema import schema_for as schema_for

__version__ = "0.1.0"

__all__ = [
    "ACCEPTED",
    "ALREADY",
    "OutputInvalid",
    "TypedOutput",
    "UnsupportedSchema",
    "check_json",
    "output_of",
    "schema_for",
]
