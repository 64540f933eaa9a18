"""Ready-made input processors and output checks.

    from agent_plugin_guardrails import Guardrails, checks

    Guardrails(
        input=[checks.no_secrets()],                      # refuse input with secrets in it
        output=[checks.no_secrets(on_found="retry"),      # ask again when the answer leaks one
                checks.deny(r"(?i)\\bguaranteed returns\\b", "Do not promise returns.", on_match="retry")],
    )

.. versionadded:: 0.1
"""

from __future__ import annotations

import re
from typing import Any, Literal

from agent_kernel import RunState

from ._verdicts import PASS, Block, Pass, Retry, Rewrite
from .redaction import Redactor

__all__ = ["deny", "no_secrets"]


def no_secrets(
    redactor: Redactor | None = None,
    *,
    on_found: Literal["block", "retry", "rewrite"] = "block",
    name: str = "no_secrets",
) -> Any:
    """A processor that refuses text containing secret-looking values.

    Works today, without kernel support for redaction: as an input processor it
    stops the run before the input reaches the model; as an output check it keeps a
    leaked secret from becoming the final answer.

    Args:
        redactor: what counts as a secret (default: the built-in rules).
        on_found: "block" (stop the run), "retry" (output checks only: ask the model
            to answer again without it) or "rewrite" (input processors only: the
            model gets the input with the secrets redacted).
        name: the processor's name, used in stop codes.
    """
    if on_found not in ("block", "retry", "rewrite"):
        raise ValueError(f"on_found must be 'block', 'retry' or 'rewrite', got {on_found!r}")
    found_by = redactor if redactor is not None else Redactor()

    def no_secrets(text: str, state: RunState) -> Pass | Block | Retry | Rewrite:
        kinds = found_by.kinds(text)
        if not kinds:
            return PASS
        what = ", ".join(kinds)
        if on_found == "rewrite":
            return Rewrite(found_by.redact(text))
        if on_found == "retry":
            return Retry(
                f"Your answer contains secret-looking values ({what}). "
                "Answer again without revealing any secret, key, token or password."
            )
        return Block(f"the text contains secret-looking values ({what})")

    no_secrets.guardrail_name = name  # type: ignore[attr-defined]
    return no_secrets


def deny(
    pattern: str | re.Pattern[str],
    reason: str,
    *,
    on_match: Literal["block", "retry"] = "block",
    name: str = "deny",
) -> Any:
    """A processor that refuses text matching `pattern` (searched anywhere in the text).

    Args:
        pattern: a regular expression.
        reason: the Block's reason, or the Retry's feedback for the model.
        on_match: "block" or "retry" (output checks only).
        name: the processor's name, used in stop codes.
    """
    if on_match not in ("block", "retry"):
        raise ValueError(f"on_match must be 'block' or 'retry', got {on_match!r}")
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern

    def deny(text: str, state: RunState) -> Pass | Block | Retry:
        if regex.search(text) is None:
            return PASS
        return Retry(reason) if on_match == "retry" else Block(reason)

    deny.guardrail_name = name  # type: ignore[attr-defined]
    return deny
