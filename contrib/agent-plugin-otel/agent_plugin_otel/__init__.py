"""agent-plugin-otel: OpenTelemetry spans and metrics for agent-kernel runs.

    from agent_kernel import Agent
    from agent_plugin_otel import Telemetry

    agent = Agent(model="openai:gpt-4o-mini", plugins=[Telemetry(agent_name="support")])

Every invocation is an ``invoke_agent`` span, with a ``chat {model}`` span per
inference attempt and an ``execute_tool {tool}`` span per tool call under it, named
and attributed after the OpenTelemetry GenAI semantic conventions. See `Telemetry`
and README.md.
"""

from attrs import frozen

from ._telemetry import CONTENT_ENV as CONTENT_ENV
from ._telemetry import FINISH_REASONS as FINISH_REASONS
from ._telemetry import Telemetry as Telemetry


@frozen
class Settings:
    """``[plugins.otel]`` in ``agent.toml``: a `Telemetry` on the global OpenTelemetry providers.

    Attributes:
        record_content: record messages, tool arguments and results on the spans;
            unset follows ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.
        metrics: record the GenAI client metrics through the global meter provider.
        agent_name: ``gen_ai.agent.name`` of the ``invoke_agent`` spans.
    """

    record_content: bool | None = None
    metrics: bool = False
    agent_name: str | None = None

    def plugin(self) -> Telemetry:
        """The configured `Telemetry` plugin (named ``otel``, taking the entry point's place)."""
        meter_provider = None
        if self.metrics:
            from opentelemetry.metrics import get_meter_provider

            meter_provider = get_meter_provider()
        return Telemetry(record_content=self.record_content, meter_provider=meter_provider, agent_name=self.agent_name)


__version__ = "0.1.0"

__all__ = ["CONTENT_ENV", "FINISH_REASONS", "Settings", "Telemetry"]
