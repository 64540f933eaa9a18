"""Redaction of secret-looking values: rules, a `Redactor`, and structural redaction.

A `Redactor` finds secrets with regular-expression `Rule`s (the built-in `RULES`
plus your own) and replaces each with ``[REDACTED:<rule name>]``. It is a plain
``str -> str`` function: pure, deterministic and idempotent
(``redact(redact(t)) == redact(t)``), and text without a match is returned as is
(the very same object).

`redact_structure` applies a redactor to every string inside a kernel value
(journal entries, events, messages, patches), leaving identifiers alone. It is
what the kernel should call on each journal entry before committing it and on each
event before emitting it; see the README for the proposed kernel registration
(``RuntimeRegistrar.add_redactor``) that `Guardrails` uses as soon as it exists.

.. versionadded:: 0.1
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, final

import attrs
from attrs import frozen

__all__ = [
    "IDENTIFIER_FIELDS",
    "RULES",
    "SECRET_KEY",
    "Finding",
    "Redactor",
    "Rule",
    "redact_structure",
]


def _compile(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    return pattern if isinstance(pattern, re.Pattern) else re.compile(pattern)


@frozen
class Rule:
    """A named pattern for one kind of secret.

    If `pattern` has groups whose names start with ``secret``, only the first of them
    that took part in the match is replaced (``password=<secret>`` keeps its key);
    otherwise the whole match is.
    """

    name: str
    pattern: re.Pattern[str] = attrs.field(converter=_compile)

    def spans(self, text: str) -> Iterable[tuple[int, int]]:
        """Start and end of every secret this rule finds in `text` (empty spans skipped)."""
        groups = [g for g in self.pattern.groupindex if g.startswith("secret")]
        for match in self.pattern.finditer(text):
            start, end = match.span()
            for group in groups:
                if match.group(group) is not None:
                    start, end = match.span(group)
                    break
            if end > start:
                yield start, end


_KEYS = (
    r"pass(?:word|wd|phrase)|pwd|secret|client[_-]?secret|secret[_-]?key|private[_-]?key|"
    r"api[_-]?key|apikey|access[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token|"
    r"session[_-]?token|token"
)

#: The built-in rules, in priority order (an overlap is named after the first rule).
RULES: tuple[Rule, ...] = (
    Rule(
        "private_key",
        r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    ),
    Rule("openai_key", r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9][A-Za-z0-9_-]{19,}"),
    Rule(
        "aws_access_key",
        r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA)[A-Z0-9]{16}(?![A-Za-z0-9])",
    ),
    Rule(
        "github_token",
        r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])",
    ),
    Rule("slack_token", r"(?<![A-Za-z0-9-])xox[abposr]-[A-Za-z0-9-]{10,}"),
    Rule("google_api_key", r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    Rule("stripe_key", r"(?<![A-Za-z0-9_])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
    Rule("jwt", r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    # A bearer token has 16+ token characters, at least one of them a digit (so prose
    # such as "bearer authentication" is left alone).
    Rule(
        "bearer_token",
        r"(?i)\bbearer[ \t]+(?P<secret>(?=[A-Za-z0-9._~+/-]*[0-9])[A-Za-z0-9._~+/-]{16,}=*)",
    ),
    Rule("basic_auth", r"(?i)\bauthorization\s*:\s*basic[ \t]+(?P<secret>[A-Za-z0-9+/]{8,}={0,2})"),
    Rule("url_credentials", r"(?i)\b[a-z][a-z0-9+.-]*://[^\s/:@]+:(?P<secret>[^\s/@]+)@"),
    # key=value and key: value pairs (env files, URLs, YAML, JSON, headers); the key may
    # have a prefix (DB_PASSWORD) and quotes; the value is redacted, quotes kept.
    Rule(
        "password",
        r"(?i)(?<![A-Za-z0-9])(?:[A-Za-z0-9]+[_-])*(?:" + _KEYS + r")[\"']?[ \t]*[=:][ \t]*"
        r"(?:\"(?P<secret_dq>[^\"\n]*)\"|'(?P<secret_sq>[^'\n]*)'|(?P<secret>[^\s\"',;&]+))",
    ),
)

RULE_NAMES = frozenset(rule.name for rule in RULES)

#: A mapping key whose string value is a secret as a whole (``{"password": "..."}``).
SECRET_KEY = re.compile(r"(?i)^(?:[A-Za-z0-9]+[_-])*(?:" + _KEYS + r")$")


@frozen
class Finding:
    """One redacted span of a text: `start`, `end` and the `rule` that named it."""

    start: int
    end: int
    rule: str


PatternLike = str | re.Pattern[str] | Rule | tuple[str, "str | re.Pattern[str]"]


@final
class Redactor:
    """Replaces secret-looking values in text with ``[REDACTED:<rule>]``.

    Args:
        patterns: extra rules: a `Rule`, a ``(name, regex)`` pair, or a bare regex
            (named ``custom``). A group named ``secret`` limits what is replaced.
        builtin: use the built-in `RULES` (before the extra ones).
        replacement: the text put instead of a secret; ``{name}`` is the rule name.

    Overlapping or touching findings of several rules are merged into one
    replacement, named after the rule listed first. A finding that lies inside a
    marker left by an earlier redaction is ignored, so redacting is idempotent.

    Raises:
        ValueError: `replacement` lacks ``{name}``, or a rule matches across two
            markers (redacting would then not be idempotent).

    .. versionadded:: 0.1
    """

    __slots__ = ("_marker", "replacement", "rules")

    def __init__(
        self,
        patterns: Iterable[PatternLike] = (),
        *,
        builtin: bool = True,
        replacement: str = "[REDACTED:{name}]",
    ) -> None:
        rules: list[Rule] = list(RULES) if builtin else []
        for pattern in patterns:
            rules.append(_rule(pattern))
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.replacement = replacement
        before, sep, after = replacement.partition("{name}")
        if not sep or "{" in before + after or not before + after:
            raise ValueError(f"replacement must contain {{name}} once plus some marker text, got {replacement!r}")
        self._marker = re.compile(re.escape(before) + r"[A-Za-z0-9_.-]*" + re.escape(after))
        probe = " ".join(replacement.format(name=rule.name) for rule in rules)
        probe = f"x{probe} {probe}x"
        marked = [m.span() for m in self._marker.finditer(probe)]
        for rule in rules:
            for start, end in rule.spans(probe):
                if not any(ms <= start and end <= me for ms, me in marked):
                    raise ValueError(
                        f"rule {rule.name!r} ({rule.pattern.pattern!r}) matches across redaction markers "
                        f"({probe[start:end]!r}); redaction would not be idempotent: narrow the pattern"
                    )

    def __repr__(self) -> str:
        return f"Redactor({len(self.rules)} rules)"

    def findings(self, text: str) -> list[Finding]:
        """The merged spans to redact in `text`, left to right."""
        found: list[tuple[int, int, int]] = []
        for order, rule in enumerate(self.rules):
            found.extend((start, end, order) for start, end in rule.spans(text))
        if not found:
            return []
        if self._marker.search(text) is not None:  # text redacted before: a marker is not a secret
            marked = [m.span() for m in self._marker.finditer(text)]
            found = [f for f in found if not any(ms <= f[0] and f[1] <= me for ms, me in marked)]
        found.sort()
        merged: list[list[int]] = []
        for start, end, order in found:
            if merged and start <= merged[-1][1]:
                last = merged[-1]
                last[1] = max(last[1], end)
                last[2] = min(last[2], order)
            else:
                merged.append([start, end, order])
        return [Finding(start, end, self.rules[order].name) for start, end, order in merged]

    def redact(self, text: str) -> str:
        """`text` with every secret replaced; the same object when there is none."""
        findings = self.findings(text)
        if not findings:
            return text
        parts: list[str] = []
        at = 0
        for finding in findings:
            parts.append(text[at : finding.start])
            parts.append(self.replacement.format(name=finding.rule))
            at = finding.end
        parts.append(text[at:])
        return "".join(parts)

    __call__ = redact

    def marker(self, name: str) -> str:
        """The replacement text for a secret found by rule `name`."""
        return self.replacement.format(name=name)

    def is_marker(self, text: str) -> bool:
        """True when `text` is exactly a replacement marker."""
        return self._marker.fullmatch(text) is not None

    def contains_secret(self, text: str) -> bool:
        """True when `text` has something to redact."""
        return bool(self.findings(text))

    def kinds(self, text: str) -> list[str]:
        """The rule names of the findings in `text`, once each, in order of appearance."""
        return list(dict.fromkeys(finding.rule for finding in self.findings(text)))


def _rule(pattern: PatternLike) -> Rule:
    if isinstance(pattern, Rule):
        return pattern
    if isinstance(pattern, tuple):
        name, regex = pattern
        return Rule(name, regex)
    if isinstance(pattern, (str, re.Pattern)):
        return Rule("custom", pattern)
    raise TypeError(f"a pattern is a regex, a (name, regex) pair or a Rule, not {pattern!r}")


# ----------------------------------------------------------------------------- structures

#: Fields that hold identifiers, never free text: `redact_structure` leaves them alone.
IDENTIFIER_FIELDS = frozenset(
    {
        "run_id",
        "id",
        "call_id",
        "tool_call_id",
        "request_id",
        "name",
        "tool",
        "model",
        "phase",
        "role",
        "plugin",
        "hook",
        "type",
        "code",
        "stop_reason",
        "what",
        "sources",
    }
)

_SKIPPED_CLASSES = ("SetData", "IncrementData", "StateKey")


def redact_structure(value: Any, redact: Callable[[str], str]) -> Any:
    """`value` with `redact` applied to every string inside it; unchanged parts are shared.

    Walks attrs instances (frozen ones are rebuilt with `attrs.evolve`, so their
    converters run again), tuples, lists and mappings (values only, keys kept).
    Fields named in `IDENTIFIER_FIELDS` are left alone, and so are plugin data
    patches (``SetData`` / ``IncrementData``: typed values a plugin owns, which
    redaction must not break). When nothing changes, `value` itself is returned.

    When `redact` is a `Redactor`, a non-empty string under a secret-looking
    mapping key (``password``, ``api_key``, ``DB_PASSWORD``... as in tool arguments
    ``{"password": "hunter2"}``) is replaced as a whole, marked ``password``.

    This is what the kernel should apply to each journal entry before it is
    buffered and folded, and to each event before it is emitted.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, tuple):
        items = tuple(redact_structure(v, redact) for v in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, list):
        items_list = [redact_structure(v, redact) for v in value]
        return value if all(a is b for a, b in zip(items_list, value, strict=True)) else items_list
    if isinstance(value, Mapping):
        changed = {k: _redact_entry(k, v, redact) for k, v in value.items()}
        if all(changed[k] is value[k] for k in value):
            return value
        return MappingProxyType(changed) if isinstance(value, MappingProxyType) else changed
    cls = type(value)
    if attrs.has(cls) and cls.__name__ not in _SKIPPED_CLASSES:
        changes: dict[str, Any] = {}
        for a in attrs.fields(cls):
            if a.name in IDENTIFIER_FIELDS or not a.init:
                continue
            old = getattr(value, a.name)
            new = redact_structure(old, redact)
            if new is not old:
                changes[a.alias or a.name] = new
        return attrs.evolve(value, **changes) if changes else value
    return value


def _redact_entry(key: Any, value: Any, redact: Callable[[str], str]) -> Any:
    if (
        isinstance(redact, Redactor)
        and isinstance(value, str)
        and value
        and isinstance(key, str)
        and SECRET_KEY.match(key)
        and not redact.is_marker(value)
    ):
        return redact.marker("password")
    return redact_structure(value, redact)
