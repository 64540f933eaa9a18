"""agent-plugin-guardrails: input processors, output checks and secret redaction.

    from agent_kernel import Agent
    from agent_plugin_guardrails import Block, Guardrails, Pass, Retry, checks

    def on_topic(text, state):
        return Pass() if "invoice" in text.lower() else Block("only invoice questions", code="offtopic")

    async def polite(text, state):                      # e.g. a moderation model call
        return Retry("Please answer politely.") if "stupid" in text else Pass()

    agent = Agent(model="openai:gpt-4o-mini",
                  plugins=[Guardrails(input=[on_topic, checks.no_secrets()], output=[polite])])

See `Guardrails` for the rules and README.md for the whole story.
"""

from attrs import frozen

from . import checks as checks
from . import redaction as redaction
from ._guardrails import Guardrails as Guardrails
from ._verdicts import PASS as PASS
from ._verdicts import Block as Block
from ._verdicts import InputCheck as InputCheck
from ._verdicts import Pass as Pass
from ._verdicts import Retry as Retry
from ._verdicts import Rewrite as Rewrite
from .redaction import RULES as RULES
from .redaction import Redactor as Redactor
from .redaction import Rule as Rule
from .redaction import redact_structure as redact_structure


@frozen
class Settings:
    """``[plugins.guardrails]`` in ``agent.toml``: redaction and output-retry settings of `Guardrails`.

    Checks are Python functions: give them in code (``Guardrails(input=[...])``, loaded
    with ``agent.plugins = ["myproject.guards:guardrails"]``).

    Attributes:
        redact: redact secrets in what is journaled and streamed.
        patterns: extra regular expressions to redact.
        max_output_retries: how often a retried output may be asked again.
        blocked_output: the text that replaces a blocked output.
    """

    redact: bool = True
    patterns: tuple[str, ...] = ()
    max_output_retries: int = 2
    blocked_output: str | None = "[The answer was withheld by a guardrail.]"

    def plugin(self) -> Guardrails:
        """The configured `Guardrails` plugin."""
        return Guardrails(
            redact=self.redact,
            patterns=self.patterns,
            max_output_retries=self.max_output_retries,
            blocked_output=self.blocked_output,
        )


__version__ = "0.1.0"

__all__ = [
    "Settings",
    "PASS",
    "RULES",
    "Block",
    "Guardrails",
    "InputCheck",
    "Pass",
    "Redactor",
    "Retry",
    "Rewrite",
    "Rule",
    "checks",
    "redact_structure",
    "redaction",
]
