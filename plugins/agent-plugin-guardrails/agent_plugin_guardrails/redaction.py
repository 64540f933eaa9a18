"""Redaction of secret-looking values: rules, a `Redactor`, and structural redaction.

A `Redactor` finds secrets with regular-expression `Rule`s (the built-in `RULES`
plus your own) and replaces each with ``[REDACTED:<rule name>]``. It is a plain
``str -> str`` function: pure, deterministic and idempotent
(``redact(redact(t)) == redact(t)``), and text without a match is returned as is
(the very same object).

Its cost is linear in the length of the text: every built-in rule begins with a
literal (``sk-``, ``AKIA``, ``ghp_``, ``-----BEGIN``, ``bearer``, ``password``...),
which the regex engine finds with a fast substring search, and nothing after it
can backtrack more than a bounded number of characters (possessive or bounded
quantifiers, no nested ones). Rules that ignore case scan one lowercased copy of
the text (``Rule(..., ignore_case=True)``) rather than use ``(?i)``, which would
make the engine try every position.

`redact_structure` applies a redactor to every string inside a kernel value
(journal entries, events, messages, patches), mapping keys included, leaving
identifiers alone. The kernel calls it (through ``Guardrails.redact``, registered
with ``RuntimeRegistrar.add_redactor``) on each journal entry before committing it
and on each event before emitting it.

.. versionadded:: 0.1
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, final

import attrs
from attrs import frozen

__all__ = [
    "IDENTIFIER_FIELDS",
    "REMEMBERED",
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

    With ``ignore_case=True`` the pattern, written in lower case and without
    ``(?i)``, is matched against ``text.lower()`` (the spans index `text`; if
    lowercasing changes the length of a non-ASCII text, `text` is matched with
    ``re.IGNORECASE`` instead). A pattern that begins with a literal is then found
    by a fast substring search, where ``(?i)`` makes the engine try every position.

    A pattern should take time linear in the text: avoid nested quantifiers
    (``(a+)*``) and quantified parts that can match the same characters as what
    follows them; prefer possessive (``a++``) or bounded (``a{1,64}``) ones.
    """

    name: str
    pattern: re.Pattern[str] = attrs.field(converter=_compile)
    ignore_case: bool = attrs.field(default=False, kw_only=True)

    def spans(self, text: str, lowered: str | None = None) -> Iterator[tuple[int, int]]:
        """Start and end of every secret this rule finds in `text` (empty spans skipped).

        Args:
            text: the text to search.
            lowered: ``text.lower()``, if the caller has it (rules that ignore case
                scan it; it is computed when needed and not given).
        """
        pattern, target = self.pattern, text
        if self.ignore_case:
            target = text.lower() if lowered is None else lowered
            if len(target) != len(text):  # a character lowercased into two: positions differ
                pattern, target = re.compile(pattern.pattern, pattern.flags | re.IGNORECASE), text
        groups = [g for g in pattern.groupindex if g.startswith("secret")]
        for match in pattern.finditer(target):
            for group in groups:
                start, end = match.span(group)
                if start >= 0:  # the group took part in the match
                    break
            else:
                start, end = match.span()
            if end > start:
                yield start, end


# ----------------------------------------------------------------------------- built-in rules
# Each pattern begins with a literal and puts its "not inside a longer word" check in a
# lookbehind *after* that literal (a leading lookbehind would make the engine try every
# position). Quantifiers are possessive (`++`, `*+`, `{n,}+`: they never give characters
# back) or bounded, so a failed attempt costs at most the run of characters it scanned,
# and runs scanned by different attempts do not overlap. (The body of a private key block
# is matched lazily up to its END line or the end of the text: a match ends there, so
# that body is scanned once.) Alternatives are short literals or begin differently, so
# trying the next one costs a few characters.

#: After a key such as ``password``: optional closing quote, ``=`` or ``:``, then the value
#: (double-quoted, single-quoted or bare; the quotes are kept).
_ASSIGNED = (
    r"[\"']?[ \t]*+[=:][ \t]*+"
    r"(?:\"(?P<secret_dq>[^\"\n]*+)\"|'(?P<secret_sq>[^'\n]*+)'|(?P<secret>[^\s\"',;&]++))"
)


def _key(word: str, tail: str = "", *, alone: bool = True, after: tuple[str, ...] = ()) -> Rule:
    """The ``password`` rule for the keys ending in `word` (+ `tail`), in lower case.

    The key is `word` itself (if `alone`), or one of `after` then `word`, maybe joined
    by ``_`` or ``-``; it starts where no letter or digit precedes it (``DB_PASSWORD``
    and ``x-api-key`` are keys, ``passwords`` and ``mytoken`` are not).
    """
    where = [f"(?<![a-z0-9]{word})"] if alone else []
    where += [f"(?<=(?<![a-z0-9]){first}{sep}{word})" for first in after for sep in ("", "[_-]")]
    # atomic: once one condition holds, a failure later does not try the others
    return Rule("password", f"{word}(?>{'|'.join(where)}){tail}{_ASSIGNED}", ignore_case=True)


_AWS_PREFIXES = "KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|PKA|ROA"  # after an A

#: The built-in rules, in priority order (an overlap is named after the first rule).
#: A kind of secret with several literal beginnings has one rule for each, all of the
#: same name (``stripe_key``: ``sk_`` and ``rk_``; ``password``: one per key word).
RULES: tuple[Rule, ...] = (
    Rule(
        "private_key",
        r"-----BEGIN[ A-Z0-9]{0,64}PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END[ A-Z0-9]{0,64}PRIVATE KEY(?: BLOCK)?-----|\Z)",
    ),
    Rule("openai_key", r"sk-(?<![A-Za-z0-9_-]sk-)[A-Za-z0-9][A-Za-z0-9_-]{19,}+"),
    Rule(
        "aws_access_key",
        rf"A(?<![A-Za-z0-9]A)(?:{_AWS_PREFIXES})[A-Z0-9]{{16}}(?![A-Za-z0-9])",
    ),
    Rule("github_token", r"gh[pousr]_(?<![A-Za-z0-9_]gh._)[A-Za-z0-9]{36,255}+(?![A-Za-z0-9_])"),
    Rule("github_token", r"github_pat_(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{22,255}+(?![A-Za-z0-9_])"),
    Rule("slack_token", r"xox[abposr]-(?<![A-Za-z0-9-]xox.-)[A-Za-z0-9-]{10,}+"),
    Rule("google_api_key", r"AIza(?<![A-Za-z0-9_-]AIza)[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    Rule("stripe_key", r"sk_(?:live|test)_(?<![A-Za-z0-9_]sk_...._)[A-Za-z0-9]{16,}+"),
    Rule("stripe_key", r"rk_(?:live|test)_(?<![A-Za-z0-9_]rk_...._)[A-Za-z0-9]{16,}+"),
    Rule(
        "jwt",
        r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{8,}+\.eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+",
    ),
    # A bearer token has 16+ token characters, at least one of them a digit (so prose
    # such as "bearer authentication" is left alone).
    Rule(
        "bearer_token",
        r"bearer(?<!\wbearer)[ \t]++"
        r"(?P<secret>(?=[a-z0-9._~+/-]{16})[a-z._~+/-]*+[0-9][a-z0-9._~+/-]*+=*+)",
        ignore_case=True,
    ),
    Rule(
        "basic_auth",
        r"authorization(?<!\wauthorization)\s*+:\s*+basic[ \t]++(?P<secret>[a-z0-9+/]{8,}+={0,2})",
        ignore_case=True,
    ),
    # scheme://user:<secret>@host
    Rule("url_credentials", r"://(?<=[A-Za-z0-9+.-]://)[^\s/:@]++:(?P<secret>[^\s/@]++)@"),
    # key=value and key: value pairs (env files, URLs, YAML, JSON, headers); the key may
    # have a prefix (DB_PASSWORD) and quotes; the value is redacted, quotes kept.
    _key("pass", "(?:word|wd|phrase)"),
    _key("pwd"),
    _key("secret", after=("client",)),
    _key("token", after=("access", "auth", "refresh", "session")),
    _key("key", alone=False, after=("secret", "private", "api", "access")),
)

RULE_NAMES = frozenset(rule.name for rule in RULES)

_KEYS = (
    r"pass(?:word|wd|phrase)|pwd|secret|client[_-]?secret|secret[_-]?key|private[_-]?key|"
    r"api[_-]?key|apikey|access[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token|"
    r"session[_-]?token|token"
)

#: A mapping key whose string value is a secret as a whole (``{"password": "..."}``).
SECRET_KEY = re.compile(r"(?i)^(?:[A-Za-z0-9]+[_-])*(?:" + _KEYS + r")$")


@frozen
class Finding:
    """One redacted span of a text: `start`, `end` and the `rule` that named it."""

    start: int
    end: int
    rule: str


PatternLike = str | re.Pattern[str] | Rule | tuple[str, "str | re.Pattern[str]"]

#: Texts at least this long are remembered by a `Redactor` (the last two; see there).
REMEMBERED = 64 * 1024


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

    With the built-in rules, a text is scanned once per rule, each scan a fast
    search for the rule's literal beginning; a text without a secret costs those
    scans and no copy.

    The redactor remembers, by identity, the last two texts of `REMEMBERED`
    characters or more that it redacted, and their results: the kernel redacts a
    tool's output in its journal entry and again in the event built from that
    (already redacted) entry, and the second time costs nothing. Those two texts
    are kept alive until two others replace them.

    Raises:
        ValueError: `replacement` lacks ``{name}``, or a rule matches across two
            markers (redacting would then not be idempotent).

    .. versionadded:: 0.1
    """

    __slots__ = ("_lowers", "_marker", "_markers", "_recent", "replacement", "rules")

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
        self._lowers = any(rule.ignore_case for rule in rules)
        self.replacement = replacement
        before, sep, after = replacement.partition("{name}")
        if not sep or "{" in before + after or not before + after:
            raise ValueError(f"replacement must contain {{name}} once plus some marker text, got {replacement!r}")
        self._markers = [replacement.format(name=rule.name) for rule in rules]
        self._recent: tuple[tuple[str, str], ...] = ()
        # linear: an attempt scans one run of name characters, and runs do not overlap
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
        return [Finding(start, end, self.rules[order].name) for start, end, order in self._merged(text)]

    def redact(self, text: str) -> str:
        """`text` with every secret replaced; the same object when there is none."""
        long = len(text) >= REMEMBERED
        if long:
            for seen, result in self._recent:  # a tuple, swapped whole: safe across threads
                if text is seen or text is result:
                    return result
        merged = self._merged(text)
        if not merged:
            result = text
        else:
            parts: list[str] = []
            at = 0
            for start, end, order in merged:
                parts.append(text[at:start])
                parts.append(self._markers[order])
                at = end
            parts.append(text[at:])
            result = "".join(parts)
        if long:
            self._recent = ((text, result), *self._recent[:1])
        return result

    def _merged(self, text: str) -> list[list[int]]:
        """The spans to redact, merged: `[start, end, index of the first rule]`, left to right."""
        if not text:
            return []
        lowered = text.lower() if self._lowers else None
        found: list[tuple[int, int, int]] = []
        for order, rule in enumerate(self.rules):
            found.extend((start, end, order) for start, end in rule.spans(text, lowered))
        if not found:
            return []
        if self._marker.search(text) is not None:  # text redacted before: a marker is not a secret
            found = _outside(found, [m.span() for m in self._marker.finditer(text)])
        found.sort()
        merged: list[list[int]] = []
        for start, end, order in found:
            if merged and start <= merged[-1][1]:
                last = merged[-1]
                last[1] = max(last[1], end)
                last[2] = min(last[2], order)
            else:
                merged.append([start, end, order])
        return merged

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


def _outside(found: list[tuple[int, int, int]], marked: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """The findings not lying inside one of the (sorted, disjoint) `marked` spans."""
    starts = [start for start, _ in marked]
    kept = []
    for finding in found:
        i = bisect_right(starts, finding[0]) - 1
        if i < 0 or finding[1] > marked[i][1]:
            kept.append(finding)
    return kept


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
    converters run again), tuples, lists and mappings (keys and values: a secret
    used as a key, ``{"sk-...": "x"}``, is redacted too).
    Fields named in `IDENTIFIER_FIELDS` are left alone, and so are plugin data
    patches (``SetData`` / ``IncrementData``: typed values a plugin owns, which
    redaction must not break). When nothing changes, `value` itself is returned.

    When two keys of a mapping redact to the same text, the later ones get a
    suffix (``[REDACTED:openai_key]#2``), so no entry is lost.

    When `redact` is a `Redactor`, a non-empty string under a secret-looking
    mapping key (``password``, ``api_key``, ``DB_PASSWORD``... as in tool arguments
    ``{"password": "hunter2"}``) is replaced as a whole, marked ``password``.

    This is what the kernel applies to each journal entry before it is buffered
    and folded, and to each event before it is emitted.
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
        return _redact_mapping(value, redact)
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


def _redact_mapping(value: Mapping[Any, Any], redact: Callable[[str], str]) -> Mapping[Any, Any]:
    pairs = [(k, redact_structure(k, redact), v, _redact_entry(k, v, redact)) for k, v in value.items()]
    if all(k is new_k and v is new_v for k, new_k, v, new_v in pairs):
        return value
    changed: dict[Any, Any] = {}
    renamed = {k for k, new_k, _, _ in pairs if new_k is not k}
    kept = {k for k, _, _, _ in pairs if k not in renamed}  # keys that stay as they are
    for k, new_k, _, new_v in pairs:
        if new_k is not k and (new_k in changed or new_k in kept):
            n = 2
            while f"{new_k}#{n}" in changed or f"{new_k}#{n}" in kept:
                n += 1
            new_k = f"{new_k}#{n}"
        changed[new_k] = new_v
    return MappingProxyType(changed) if isinstance(value, MappingProxyType) else changed


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
