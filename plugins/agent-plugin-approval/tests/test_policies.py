"""Every policy rule, one by one, and the invariants of the composites (hypothesis)."""

from __future__ import annotations

import math
import re

import pytest
from approval_testkit import PROPERTY, call, empty_state
from hypothesis import given
from hypothesis import strategies as st

from agent_plugin_approval import Decision
from agent_plugin_approval.policies import (
    Constant,
    Rule,
    all_of,
    allow,
    always_approve,
    always_ask,
    always_deny,
    any_of,
    ask,
    deny,
    first_match,
    pattern,
    require_approval,
    risk,
    threshold,
)

STATE = empty_state()


def decide(policy, name, **arguments):
    return policy.decide(call(name, **arguments), STATE)


# ----------------------------------------------------------------------------- Decision


def test_decision_values():
    assert allow() == Decision("allow")
    assert ask("why") == Decision("ask", "why")
    assert deny("no") == Decision("deny", "no")
    assert allow(failure_key="k").failure_key == "k"
    assert [d.strictness for d in (allow(), allow(failure_key="k"), ask(), deny())] == [0, 1, 2, 3]


def test_decision_rejects_bad_values():
    with pytest.raises(ValueError, match="'allow', 'ask' or 'deny'"):
        Decision("maybe")
    with pytest.raises(ValueError, match="failure_key"):
        Decision("ask", "r", failure_key="k")


# ----------------------------------------------------------------------------- constants


def test_always_approve_ask_deny():
    assert decide(always_approve(), "anything") == allow()
    assert decide(always_ask("check"), "anything") == ask("check")
    assert decide(always_deny("never"), "anything") == deny("never")
    assert decide(Constant(None), "anything") is None


# ----------------------------------------------------------------------------- require_approval


def test_require_approval_asks_for_matching_globs_only():
    policy = require_approval("shell", "write_*")
    assert decide(policy, "shell").action == "ask"
    assert decide(policy, "write_file").action == "ask"
    assert "write_*" in decide(policy, "write_file").reason
    assert decide(policy, "read_file") is None
    assert decide(policy, "Shell") is None  # case sensitive


def test_require_approval_without_globs_asks_for_everything():
    assert decide(require_approval(), "x").action == "ask"


def test_require_approval_reason_and_validation():
    assert decide(require_approval("a", reason="money moves"), "a") == ask("money moves")
    with pytest.raises(TypeError, match="non-empty strings"):
        require_approval("")
    with pytest.raises(TypeError, match="non-empty strings"):
        require_approval(3)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- pattern


def test_rule_equality_matcher_is_json_like():
    rule = Rule("set", "deny", when={"force": True})
    assert rule.decide(call("set", force=True), STATE).action == "deny"
    assert rule.decide(call("set", force=1), STATE) is None  # True is not 1
    assert rule.decide(call("set", force=False), STATE) is None
    assert Rule("n", "ask", when={"x": 1}).decide(call("n", x=True), STATE) is None
    assert Rule("n", "ask", when={"x": [1, 2]}).decide(call("n", x=[1, 2]), STATE).action == "ask"


def test_rule_regex_matcher_searches_strings_and_json_text():
    rule = Rule("shell", "deny", when={"command": re.compile(r"\brm\b")})
    assert rule.decide(call("shell", command="ls && rm -rf /"), STATE).action == "deny"
    assert rule.decide(call("shell", command="format"), STATE) is None
    assert rule.decide(call("shell", command=["rm", "-rf", "/"]), STATE).action == "deny"  # JSON text
    anchored = Rule("shell", "allow", when={"command": re.compile(r"^git status$")})
    assert anchored.decide(call("shell", command="git status"), STATE) == Decision(
        "allow", anchored._describe(call("shell"))
    )
    assert anchored.decide(call("shell", command="git status; rm x"), STATE) is None


def test_rule_class_matcher_is_an_isinstance_check_without_bool_as_int():
    rule = Rule("f", "allow", when={"n": int})
    assert rule.decide(call("f", n=3), STATE).action == "allow"
    assert rule.decide(call("f", n=True), STATE) is None
    assert rule.decide(call("f", n="3"), STATE) is None
    assert Rule("f", "allow", when={"p": str}).decide(call("f", p="x"), STATE).action == "allow"


def test_rule_predicate_matcher_and_raising_predicates_err_on_the_safe_side():
    def big(value):
        return value > 100

    assert Rule("pay", "ask", when={"amount": big}).decide(call("pay", amount=500), STATE).action == "ask"
    assert Rule("pay", "ask", when={"amount": big}).decide(call("pay", amount=5), STATE) is None
    # "abc" > 100 raises TypeError: an ask or deny rule then applies, an allow rule does not
    assert Rule("pay", "ask", when={"amount": big}).decide(call("pay", amount="abc"), STATE).action == "ask"
    assert Rule("pay", "deny", when={"amount": big}).decide(call("pay", amount="abc"), STATE).action == "deny"
    assert Rule("pay", "allow", when={"amount": big}).decide(call("pay", amount="abc"), STATE) is None


def test_rule_missing_argument_never_matches():
    assert Rule("f", "deny", when={"force": True}).decide(call("f"), STATE) is None
    assert Rule("f", "deny", when={"force": lambda v: True}).decide(call("f"), STATE) is None


def test_rule_needs_every_matcher_and_the_tool_glob():
    rule = Rule(("http_get", "http_post"), "allow", when={"url": re.compile(r"^https://internal\."), "retries": 0})
    assert rule.decide(call("http_get", url="https://internal.x/", retries=0), STATE).action == "allow"
    assert rule.decide(call("http_get", url="https://internal.x/", retries=1), STATE) is None
    assert rule.decide(call("http_get", url="https://evil/", retries=0), STATE) is None
    assert rule.decide(call("ftp_get", url="https://internal.x/", retries=0), STATE) is None


def test_pattern_first_matching_rule_decides():
    policy = pattern(
        [
            Rule("shell", "deny", when={"command": re.compile(r"^rm ")}, reason="no deleting"),
            Rule("shell", "allow", when={"command": re.compile(r"^ls\b")}),
            Rule("read_*", "allow"),
            Rule("*", "ask", reason="everything else is checked"),
        ]
    )
    assert decide(policy, "shell", command="rm -rf /") == deny("no deleting")
    assert decide(policy, "shell", command="ls -la").action == "allow"
    assert decide(policy, "read_file", path="x").action == "allow"
    assert decide(policy, "shell", command="make") == ask("everything else is checked")
    assert decide(pattern([Rule("a", "allow")]), "b") is None


def test_pattern_mapping_shorthand():
    policy = pattern({"read_*": "allow", "write_*": "ask", "rm": "deny"})
    assert [decide(policy, n).action for n in ("read_x", "write_x", "rm")] == ["allow", "ask", "deny"]
    assert decide(policy, "other") is None


def test_pattern_and_rule_validation():
    with pytest.raises(ValueError, match="'allow', 'ask' or 'deny'"):
        Rule("x", "block")
    with pytest.raises(TypeError, match="mapping"):
        Rule("x", "ask", when=[("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Rule"):
        pattern([("x", "ask")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="list of Rule"):
        pattern(Rule("x"))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- threshold


def test_threshold_asks_above_the_limit_and_allows_at_or_below():
    policy = threshold("amount", 100)
    assert decide(policy, "pay", amount=100.5).action == "ask"
    assert "amount=100.5 exceeds 100" in decide(policy, "pay", amount=100.5).reason
    assert decide(policy, "pay", amount=100) == allow()
    assert decide(policy, "pay", amount=-5) == allow()
    assert decide(policy, "pay", to="bob") is None  # argument absent: no opinion


def test_threshold_fails_closed_on_values_that_are_not_numbers():
    policy = threshold("amount", 100, action="deny")
    for value in ("5", True, None, [1], math.nan, {"v": 1}):
        assert decide(policy, "pay", amount=value).action == "deny", value
    assert decide(policy, "pay", amount=math.inf).action == "deny"
    assert decide(policy, "pay", amount=-math.inf) == allow()


def test_threshold_tools_and_validation():
    policy = threshold("amount", 10, tools=["pay", "refund"], reason="big money")
    assert decide(policy, "pay", amount=11) == ask("big money")
    assert decide(policy, "tip", amount=11) is None
    with pytest.raises(ValueError, match="'ask' or 'deny'"):
        threshold("amount", 10, action="allow")
    with pytest.raises(ValueError, match="number"):
        threshold("amount", "10")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- risk


def test_risk_score_limits():
    scores = {"read": 0.1, "write": 0.6, "delete": 0.95}
    policy = risk(lambda c: scores[c.name], 0.5, deny_above=0.9)
    assert decide(policy, "read") == allow()
    assert decide(policy, "write").action == "ask"
    assert "0.6 exceeds 0.5" in decide(policy, "write").reason
    assert decide(policy, "delete").action == "deny"
    assert decide(risk(lambda c: scores[c.name], 0.5), "delete").action == "ask"  # no deny_above


def test_risk_fails_closed_and_filters_tools():
    assert decide(risk(lambda c: "high", 0.5), "x").action == "ask"
    assert decide(risk(lambda c: math.nan, 0.5), "x").action == "ask"
    assert decide(risk(lambda c: 1.0, 0.5, tools="shell"), "x") is None
    with pytest.raises(ValueError, match="deny_above"):
        risk(lambda c: 0, 0.5, deny_above=0.1)
    with pytest.raises(TypeError, match="score function"):
        risk("not callable", 0.5)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- composites


def test_composites_examples():
    pay_limit = first_match(threshold("amount", 100, tools="pay"), require_approval("pay", "shell"))
    assert decide(pay_limit, "pay", amount=5) == allow()
    assert decide(pay_limit, "pay", amount=500).action == "ask"
    assert decide(pay_limit, "shell").action == "ask"
    assert decide(pay_limit, "add") is None
    strict = all_of(require_approval("shell"), pattern({"shell": "deny"}))
    assert decide(strict, "shell").action == "deny"
    lenient = any_of(require_approval("shell"), pattern({"shell": "allow"}))
    assert decide(lenient, "shell").action == "allow"
    assert decide(first_match(default=ask("default")), "x") == ask("default")


def test_composites_validate_their_parts():
    with pytest.raises(TypeError, match="policy"):
        all_of("require_approval")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Decision"):
        first_match(always_approve(), default="allow")  # type: ignore[arg-type]

    class Broken:
        def decide(self, call, state):
            return "allow"

    with pytest.raises(TypeError, match="expected a Decision or None"):
        decide(all_of(Broken()), "x")


# Hypothesis: composites over constant leaves (including abstaining ones).

DECISIONS = st.one_of(
    st.none(),
    st.builds(allow, st.sampled_from(["a1", "a2"])),
    st.builds(lambda r: allow(r, failure_key="k"), st.sampled_from(["w1", "w2"])),
    st.builds(ask, st.sampled_from(["q1", "q2"])),
    st.builds(deny, st.sampled_from(["d1", "d2"])),
)
LEAVES = st.lists(DECISIONS, max_size=6)


def _first_with(decisions, strictness):
    return next(d for d in decisions if d is not None and d.strictness == strictness)


@PROPERTY
@given(LEAVES)
def test_all_of_is_the_strictest_and_denies_if_any_denies(decisions):
    result = decide(all_of(*map(Constant, decisions)), "tool")
    present = [d for d in decisions if d is not None]
    if not present:
        assert result is None
        return
    assert (result.action == "deny") == any(d.action == "deny" for d in present)
    assert result == _first_with(decisions, max(d.strictness for d in present))


@PROPERTY
@given(LEAVES)
def test_any_of_is_the_most_permissive_and_allows_if_any_allows(decisions):
    result = decide(any_of(*map(Constant, decisions)), "tool")
    present = [d for d in decisions if d is not None]
    if not present:
        assert result is None
        return
    assert (result.action == "allow") == any(d.action == "allow" for d in present)
    assert result == _first_with(decisions, min(d.strictness for d in present))


@PROPERTY
@given(LEAVES, DECISIONS)
def test_first_match_is_the_first_decision_with_an_opinion(decisions, default):
    result = decide(first_match(*map(Constant, decisions), default=default), "tool")
    assert result == next((d for d in decisions if d is not None), default)


@PROPERTY
@given(LEAVES, st.integers(0, 6), st.integers(0, 6))
def test_all_of_and_any_of_are_associative(decisions, i, j):
    i, j = sorted((min(i, len(decisions)), min(j, len(decisions))))
    leaves = list(map(Constant, decisions))
    for combine in (all_of, any_of):
        flat = decide(combine(*leaves), "tool")
        nested = decide(combine(combine(*leaves[:i]), combine(*leaves[i:j]), combine(*leaves[j:])), "tool")
        assert flat == nested


NAMES = st.sampled_from(["read_file", "write_file", "shell", "pay", "rm"])
GLOBS = st.sampled_from(["*", "read_*", "write_*", "shell", "pay", "r*", "nope"])
VALUES = st.one_of(st.integers(-2, 2), st.booleans(), st.sampled_from(["a", "b"]))


@PROPERTY
@given(
    st.lists(
        st.tuples(
            GLOBS, st.sampled_from(["allow", "ask", "deny"]), st.dictionaries(st.sampled_from("xy"), VALUES, max_size=2)
        ),
        max_size=6,
    ),
    NAMES,
    st.dictionaries(st.sampled_from("xyz"), VALUES, max_size=3),
)
def test_pattern_equals_the_first_matching_rule(specs, name, arguments):
    """Reference: fnmatch on the name, strict (JSON-like) equality on every listed argument."""
    import fnmatch

    rules = [Rule(glob, action, when=when) for glob, action, when in specs]
    result = decide(pattern(rules), name, **arguments)

    def same(a, b):
        return type(a) is type(b) and a == b

    expected = None
    for (glob, action, when), rule in zip(specs, rules, strict=True):
        if fnmatch.fnmatchcase(name, glob) and all(k in arguments and same(arguments[k], v) for k, v in when.items()):
            expected = Decision(action, rule._describe(call(name)))
            break
    assert result == expected
