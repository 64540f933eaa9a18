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

__version__ = "0.1.0"

__all__ = [
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
