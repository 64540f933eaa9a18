"""Approval policies: small frozen values that decide what happens to a tool call.

A policy has one method, ``decide(call, state) -> Decision | None``: given the
`agent_kernel.ToolCall` the model made and the run's frozen `agent_kernel.RunState`,
it returns

* ``allow()``: run the call;
* ``ask(reason)``: pause the run until a person (or an inline approver) decides;
  `reason` is shown to them (`agent_kernel.ApprovalRequest.reason`);
* ``deny(reason)``: do not run the call; the model receives ``"Denied: <reason>"``
  as an error result;
* ``None``: no opinion ("this rule does not apply"). Composites skip it; at the top
  level `agent_plugin_approval.Approval` treats it as allow.

Policies are pure: the same call and state give the same decision. They never
raise for what the model sent (a missing or malformed argument is a decision, see
each rule); a policy that raises anyway ends the run with outcome ``error`` naming
the approval plugin.

Rules
=====

``always_approve()``
    Allow every call. ``always_ask(reason)`` and ``always_deny(reason)`` are its
    siblings.

``require_approval(*tool_globs, reason="")``
    Ask when the tool's name matches one of the globs (`fnmatch` syntax, case
    sensitive: ``"shell"``, ``"write_*"``, ``"fs.*"``); no opinion otherwise. With
    no glob at all it asks for every tool.

``pattern(rules)``
    The first `Rule` that matches decides; no opinion when none matches. A
    ``Rule(tool, action="ask", *, when={}, reason="")`` matches when the tool name
    matches the glob(s) `tool` and every argument named in `when` matches:

    * a compiled regex (``re.compile(...)``) matches when ``pattern.search`` finds
      it in the argument; an argument that is not a string is searched as its
      canonical JSON text (so ``["rm", "-rf"]`` contains ``rm``);
    * a class matches when the argument is an instance of it (``bool`` is not an
      ``int`` here, as in JSON);
    * any other callable is a predicate: the argument matches when it returns a true
      value. A predicate that raises errs on the safe side: ``ask`` and ``deny``
      rules then match, ``allow`` rules do not;
    * anything else matches by equality (again ``True`` is not ``1``).

    An argument the call does not have never matches. ``pattern`` also takes a
    mapping ``{tool_glob: action}`` for rules without argument matchers.

``threshold(argument, limit, *, tools="*", action="ask", reason="")``
    For a tool matching `tools` whose call has `argument`: a number greater than
    `limit` gets `action` (``"ask"`` or ``"deny"``), one at most `limit` is
    allowed. A value that is not a number (a string, a bool, NaN) gets `action`:
    it cannot be shown to be small. No opinion when the tool does not match or the
    argument is absent.

``risk(score, limit, *, deny_above=None, tools="*")``
    ``score(call)`` returns a number: above `deny_above` (when given) the call is
    denied, above `limit` it is asked about, otherwise allowed. A score that is not a
    number (or NaN) is asked about. No opinion for tools not matching `tools`.

``all_of(*policies)``
    The strictest decision wins: deny if any denies, else ask if any asks, else
    allow if any allows; no opinion if all abstain. (An allow that asks after a
    failure counts as stricter than a plain allow.) Ties keep the first.

``any_of(*policies)``
    The most permissive decision wins: allow if any allows, else ask if any asks,
    else deny; no opinion if all abstain. Ties keep the first.

``first_match(*policies, default=None)``
    The first decision that is not None, else `default` (a `Decision` or None).

``exec_policy(rules, mode="unless-trusted", *, tools=("shell", "bash", "exec"), argument="command", ...)``
    Prefix rules for command-running tools; no opinion for other tools. `rules`
    maps a command prefix (``"git push"`` or ``("git", "push")``) to ``"allow"``
    (trusted), ``"ask"`` or ``"deny"``. The call's `argument` is a command string
    (run by a shell) or an argv list.

    * A string is parsed with tree-sitter-bash, and every command it would run is
      checked: in lists, pipelines, subshells, groups and compound commands, in
      command and process substitutions anywhere (also inside double quotes), in
      ``bash -c SCRIPT`` (any common shell, any flags in any order), literal
      here-strings fed to a shell, ``eval`` and ``trap``, behind wrappers (``sudo``,
      ``env -S``, ``timeout``, ``xargs``, ... parsed by their real options) and in
      ``find -exec``.
    * A rule matches a command whose leading words equal its prefix, after quote
      removal and leading ``VAR=value`` assignments. When several match, deny beats
      ask beats allow: rule order never matters.
    * Deny and ask rules also match a program by basename (``/bin/rm`` is ``rm``) and,
      after a wrapper word, at any later word. Allow rules match only the exact
      words, and never a command that uses expansions, redirections, assignments or
      compound commands: what runs there is not what is written.
    * What cannot be resolved to plain literal commands (a command name that is an
      expansion, substitution, glob, brace pattern or ``$'...'``; a script that is
      not literal; ``eval``, ``source``; arithmetic reading variables; an unknown
      wrapper option; a command that does not parse) counts as an ask rule, as do an
      argument that is not a string or a list of strings and a missing argument; a
      denied command found anywhere still denies. An empty command matches no rule.

    The strictest command of the line gives its category (deny, ask, unmatched,
    allow); the mode turns it into a decision:

    ==========  =======  ==========  ==============  ==================================
    category    never    on-request  unless-trusted  on-failure
    ==========  =======  ==========  ==============  ==================================
    allow       allow    allow*      allow*          allow
    unmatched   allow    allow*      ask             allow, ask to re-run after failure
    ask         deny     ask         ask             ask
    deny        deny     deny        deny            deny
    ==========  =======  ==========  ==============  ==================================

    ``never`` cannot ask, so what would be asked about is denied. (*) In
    ``on-request`` and ``unless-trusted`` the model may ask itself: a call whose
    `request_argument` (``request_approval``) is ``true`` is asked about, with its
    `justification_argument` in the reason. ``on-failure`` runs commands and asks
    before the same command line runs again after it failed in this run (the kernel
    cannot re-run a finished call with more privileges; see below).

Asking again after a failure
============================

``allow(failure_key=...)`` is an allow that turns into ask once a call with the
same key has failed (returned an error result) earlier in the run. `ExecPolicy`'s
``on-failure`` mode uses it; the `Approval` plugin keeps the failed keys in the
run's state, so this holds across resumes.

.. versionadded:: 0.1
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any

import attrs
from attrs import field, frozen

from agent_kernel import RunState, ToolCall

from ._decision import (
    Action,
    Decision,
    Policy,
    _action,
    _check_result,
    _globs,
    _matches_tool,
    _number,
    _policies,
    _strict_action,
    allow,
    ask,
    canonical_json,
    deny,
)
from ._exec import ExecPolicy, ExecRule, exec_policy

__all__ = [
    "Action",
    "AllOf",
    "AnyOf",
    "Constant",
    "Decision",
    "ExecPolicy",
    "ExecRule",
    "FirstMatch",
    "Pattern",
    "Policy",
    "RequireApproval",
    "Risk",
    "Rule",
    "Threshold",
    "all_of",
    "allow",
    "always_approve",
    "always_ask",
    "always_deny",
    "any_of",
    "ask",
    "deny",
    "exec_policy",
    "first_match",
    "pattern",
    "require_approval",
    "risk",
    "threshold",
]


# ----------------------------------------------------------------------------- leaves


@frozen
class Constant:
    """The same decision for every call (`always_approve`, `always_ask`, `always_deny`)."""

    decision: Decision | None

    def decide(self, call: ToolCall, state: RunState) -> Decision | None:
        return self.decision


def always_approve() -> Constant:
    """Allow every call."""
    return Constant(allow())


def always_ask(reason: str = "") -> Constant:
    """Ask about every call."""
    return Constant(ask(reason))


def always_deny(reason: str = "tool calls are not allowed") -> Constant:
    """Deny every call."""
    return Constant(deny(reason))


@frozen
class RequireApproval:
    """Ask for tools whose name matches one of `globs` (every tool when empty)."""

    globs: tuple[str, ...] = field(converter=_globs, default=())
    reason: str = ""

    def decide(self, call: ToolCall, state: RunState) -> Decision | None:
        if not self.globs:
            return ask(self.reason or f"{call.name} requires approval")
        for glob in self.globs:
            if fnmatchcase(call.name, glob):
                return ask(self.reason or f"{call.name} requires approval (matches {glob!r})")
        return None


def require_approval(*tool_globs: str, reason: str = "") -> RequireApproval:
    """Ask before running any tool whose name matches one of `tool_globs` (all tools if none)."""
    return RequireApproval(tool_globs, reason)


_MISSING: Any = object()


def _same(value: Any, expected: Any) -> bool:
    """JSON-like equality: ``True`` is not ``1``."""
    if isinstance(value, bool) != isinstance(expected, bool):
        return False
    try:
        return bool(value == expected)
    except Exception:
        return False


def _freeze_when(when: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    if not isinstance(when, Mapping):
        raise TypeError(f"when must be a mapping of argument name to matcher, got {when!r}")
    for name in when:
        if not isinstance(name, str):
            raise TypeError(f"argument names in when must be strings, got {name!r}")
    return tuple(when.items())


@frozen
class Rule:
    """One rule of `pattern`: a tool glob, argument matchers and an action.

    Args:
        tool: a glob or a collection of globs for the tool name.
        action: what a match decides: ``"allow"``, ``"ask"`` or ``"deny"``.
        when: argument name to matcher (regex, class, predicate or value).
        reason: the decision's reason (a description of the rule by default).
    """

    tool: tuple[str, ...] = field(converter=_globs, default=("*",))
    action: Action = field(default="ask", validator=_action)
    when: tuple[tuple[str, Any], ...] = field(converter=_freeze_when, default=MappingProxyType({}), kw_only=True)
    reason: str = field(default="", kw_only=True)

    def matches(self, call: ToolCall) -> bool:
        """True when the tool name and every argument matcher match `call`."""
        if not _matches_tool(self.tool, call.name):
            return False
        arguments = call.arguments
        for name, matcher in self.when:
            value = arguments.get(name, _MISSING)
            if value is _MISSING or not self._match(matcher, value):
                return False
        return True

    def _match(self, matcher: Any, value: Any) -> bool:
        if isinstance(matcher, re.Pattern):
            text = value if isinstance(value, str) else canonical_json(value)
            return matcher.search(text) is not None
        if isinstance(matcher, type):
            if matcher is int and isinstance(value, bool):
                return False
            return isinstance(value, matcher)
        if callable(matcher):
            try:
                return bool(matcher(value))
            except Exception:
                return self.action != "allow"  # err on the safe side
        return _same(value, matcher)

    def decide(self, call: ToolCall, state: RunState) -> Decision | None:
        if not self.matches(call):
            return None
        reason = self.reason or self._describe(call)
        return Decision(self.action, reason)

    def _describe(self, call: ToolCall) -> str:
        glob = self.tool[0] if len(self.tool) == 1 else "|".join(self.tool)
        conditions = "".join(f", {name}={_show(matcher)}" for name, matcher in self.when)
        verb = {"allow": "allows", "ask": "requires approval for", "deny": "forbids"}[self.action]
        return f"rule ({glob}{conditions}) {verb} {call.name}"


def _show(matcher: Any) -> str:
    if isinstance(matcher, re.Pattern):
        return f"/{matcher.pattern}/"
    if isinstance(matcher, type):
        return matcher.__name__
    if callable(matcher):
        return getattr(matcher, "__name__", "predicate")
    return repr(matcher)


def _rules(rules: Iterable[Rule] | Mapping[str, Action]) -> tuple[Rule, ...]:
    if isinstance(rules, Mapping):
        return tuple(Rule(glob, action) for glob, action in rules.items())
    if isinstance(rules, (str, Rule)):
        raise TypeError("pattern takes a list of Rule(...) or a mapping {tool_glob: action}")
    out = tuple(rules)
    for rule in out:
        if not isinstance(rule, Rule):
            raise TypeError(f"pattern rules must be Rule(...) values, got {rule!r}")
    return out


@frozen
class Pattern:
    """The first matching `Rule` decides; None when none matches."""

    rules: tuple[Rule, ...] = field(converter=_rules)

    def decide(self, call: ToolCall, state: RunState) -> Decision | None:
        for rule in self.rules:
            decision = rule.decide(call, state)
            if decision is not None:
                return decision
        return None


def pattern(rules: Iterable[Rule] | Mapping[str, Action]) -> Pattern:
    """Rules by tool glob and argument matchers; the first match decides."""
    return Pattern(rules)


def _limit(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.name == "deny_above":
        return
    if _number(value) is None:
        raise ValueError(f"{attribute.name} must be a number, got {value!r}")


@frozen
class Threshold:
    """Ask (or deny) when a numeric argument exceeds `limit`; allow at or below it."""

    argument: str
    limit: float = field(validator=_limit)
    tools: tuple[str, ...] = field(converter=_globs, default=("*",), kw_only=True)
    action: Action = field(default="ask", validator=_strict_action, kw_only=True)
    reason: str = field(default="", kw_only=True)

    def decide(self, call: ToolCall, state: RunState) -> Decision | None:
        if not _matches_tool(self.tools, call.name):
            return None
        value = call.arguments.get(self.argument, _MISSING)
        if value is _MISSING:
            return None
        number = _number(value)
        if number is None:
            why = (
                f"{call.name}: {self.argument}={value!r} is not a number, so it cannot be checked against {self.limit}"
            )
            return Decision(self.action, self.reason or why)
        if number > self.limit:
            return Decision(self.action, self.reason or f"{call.name}: {self.argument}={value} exceeds {self.limit}")
        return allow()


def threshold(
    argument: str, limit: float, *, tools: str | Iterable[str] = "*", action: Action = "ask", reason: str = ""
) -> Threshold:
    """Ask (or deny) when ``call.arguments[argument] > limit``; allow at or below."""
    return Threshold(argument, limit, tools=tools, action=action, reason=reason)


@frozen
class Risk:
    """Score each call: above `deny_above` deny, above `limit` ask, else allow."""

    score: Callable[[ToolCall], float]
    limit: float = field(validator=_limit)
    deny_above: float | None = field(default=None, validator=_limit, kw_only=True)
    tools: tuple[str, ...] = field(converter=_globs, default=("*",), kw_only=True)

    def __attrs_post_init__(self) -> None:
        if not callable(self.score):
            raise TypeError(f"risk needs a score function score(call) -> number, got {self.score!r}")
        if self.deny_above is not None and self.deny_above < self.limit:
            raise ValueError(f"deny_above ({self.deny_above}) must not be below limit ({self.limit})")

    def decide(self, call: ToolCall, state: RunState) -> Decision | None:
        if not _matches_tool(self.tools, call.name):
            return None
        raw = self.score(call)
        score = _number(raw)
        if score is None:
            return ask(f"{call.name}: the risk score {raw!r} is not a number")
        if self.deny_above is not None and score > self.deny_above:
            return deny(f"{call.name}: risk score {score:g} exceeds {self.deny_above:g}")
        if score > self.limit:
            return ask(f"{call.name}: risk score {score:g} exceeds {self.limit:g}")
        return allow()


def risk(
    score: Callable[[ToolCall], float],
    limit: float,
    *,
    deny_above: float | None = None,
    tools: str | Iterable[str] = "*",
) -> Risk:
    """Ask when ``score(call) > limit`` (deny when above `deny_above`); allow otherwise."""
    return Risk(score, limit, deny_above=deny_above, tools=tools)


# ----------------------------------------------------------------------------- composites


@frozen
class AllOf:
    """The strictest decision of `policies` (deny > ask > allow); None if all abstain."""

    policies: tuple[Policy, ...] = field(converter=_policies)

    def decide(self, call: ToolCall, state: RunState) -> Decision | None:
        best: Decision | None = None
        for policy in self.policies:
            decision = _check_result(policy, policy.decide(call, state))
            if decision is not None and (best is None or decision.strictness > best.strictness):
                best = decision
                if best.action == "deny":
                    break
        return best


@frozen
class AnyOf:
    """The most permissive decision of `policies` (allow > ask > deny); None if all abstain."""

    policies: tuple[Policy, ...] = field(converter=_policies)

    def decide(self, call: ToolCall, state: RunState) -> Decision | None:
        best: Decision | None = None
        for policy in self.policies:
            decision = _check_result(policy, policy.decide(call, state))
            if decision is not None and (best is None or decision.strictness < best.strictness):
                best = decision
        return best


@frozen
class FirstMatch:
    """The first decision of `policies` that is not None, else `default`."""

    policies: tuple[Policy, ...] = field(converter=_policies)
    default: Decision | None = None

    def decide(self, call: ToolCall, state: RunState) -> Decision | None:
        for policy in self.policies:
            decision = _check_result(policy, policy.decide(call, state))
            if decision is not None:
                return decision
        return self.default


def all_of(*policies: Policy) -> AllOf:
    """Every policy must agree: the strictest decision wins."""
    return AllOf(policies)


def any_of(*policies: Policy) -> AnyOf:
    """One policy is enough: the most permissive decision wins."""
    return AnyOf(policies)


def first_match(*policies: Policy, default: Decision | None = None) -> FirstMatch:
    """The first policy with an opinion decides; `default` when none has one."""
    if default is not None and not isinstance(default, Decision):
        raise TypeError(f"default must be a Decision (allow(), ask(...), deny(...)) or None, got {default!r}")
    return FirstMatch(policies, default)
