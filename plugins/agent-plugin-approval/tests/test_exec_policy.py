"""`exec_policy`: command parsing, prefix rules, the four modes, and a reference model (hypothesis)."""

from __future__ import annotations

import shlex

import pytest
from approval_testkit import PROPERTY, call, empty_state
from hypothesis import given
from hypothesis import strategies as st

from agent_plugin_approval.policies import ExecRule, exec_policy

STATE = empty_state()
RULES = {"git status": "allow", "ls": "allow", "git push": "ask", "rm": "deny", "git": "allow"}


def category(command, rules=RULES):
    return exec_policy(rules).classify(command).category


def action(command, mode, rules=RULES, **arguments):
    decision = exec_policy(rules, mode).decide(call("shell", command=command, **arguments), STATE)
    return decision.action


# ----------------------------------------------------------------------------- rules and parsing


def test_prefix_rules_match_whole_leading_words():
    assert category("git status") == "allow"
    assert category("git status --short") == "allow"
    assert category("git statusx") == "allow"  # "git" alone is allowed in RULES
    assert category("gitk") == "unmatched"
    assert category(["git", "status"]) == "allow"
    assert category("git push origin main") == "ask"


def test_the_strictest_matching_rule_wins_whatever_the_order():
    rules = [("git", "allow"), ("git push", "ask"), ("git push --force", "deny")]
    for ordered in (rules, list(reversed(rules))):
        assert category("git push --force origin", ordered) == "deny"
        assert category("git push origin", ordered) == "ask"
        assert category("git log", ordered) == "allow"


def test_every_command_of_a_compound_line_is_checked():
    assert category("ls && rm -rf /") == "deny"
    assert category("ls; git push") == "ask"
    assert category("ls | grep x") == "unmatched"  # grep has no rule
    assert category("ls || git status & ls") == "allow"
    assert category("ls\nrm -rf /") == "deny"  # a newline separates commands
    assert category("(ls; rm x)") == "deny"
    assert category("ls # note\nrm x") == "deny"  # '#' never hides the next line


def test_quoted_operators_are_arguments_not_separators():
    assert category('git commit -m "fix; rm -rf /"') == "allow"


def test_untrusted_shell_features_are_never_allowed_by_prefix():
    for command in (
        "ls $(rm -rf /)",
        "ls `whoami`",
        "ls $HOME",
        "ls > /etc/passwd",
        "ls 2>&1",
        "FOO=1 ls",
        "LD_PRELOAD=/x.so git status",
        "{ ls; }",
        "for f in a; do ls; done",
    ):
        assert category(command) in ("unmatched", "deny"), command
    assert category("echo $(rm -rf /)") == "deny"  # rules still see the substituted command
    assert category("if true; then rm -rf /; fi") == "deny"


def test_deny_and_ask_rules_see_through_paths_and_wrappers_allow_rules_do_not():
    assert category("/bin/rm -rf /") == "deny"
    assert category("/tmp/evil/ls") == "unmatched"  # not the trusted ls
    assert category("sudo -u root rm -rf /") == "deny"
    assert category("timeout 5 git push") == "ask"
    assert category("xargs rm") == "deny"
    assert category("sudo ls") == "unmatched"
    assert category(["env", "FOO=1", "rm", "x"]) == "deny"


def test_shell_scripts_and_eval_are_checked_inside():
    assert category('bash -lc "rm -rf /"') == "deny"
    assert category(["sh", "-c", "ls && git push"]) == "ask"
    assert category(["bash", "-c", "ls"]) == "allow"
    assert category('eval "rm x"') == "deny"
    assert category(["bash", "script.sh"]) == "unmatched"
    assert category(["bash", "-c", 'bash -c \'bash -c "bash -c \\"bash -c ls\\""\'']) == "ask"  # too deep
    assert category("bash -c ls", {"bash": "allow"}) == "unmatched"  # an allowed shell does not trust its script


def test_line_continuations_do_not_hide_words():
    assert category("r\\\nm -rf /") == "deny"


def test_unparseable_or_malformed_commands_are_asked_about():
    assert category('echo "unterminated') == "ask"
    assert category(42) == "ask"
    assert category(["ls", 3]) == "ask"
    assert category("") == "unmatched"
    assert category([]) == "unmatched"


def test_exec_rule_validation():
    assert ExecRule("git push", "ask").prefix == ("git", "push")
    assert ExecRule(["a b"], "ask").prefix == ("a b",)
    with pytest.raises(ValueError, match="non-empty"):
        ExecRule("", "ask")
    with pytest.raises(ValueError, match="operator"):
        ExecRule(["ls", "&&"], "allow")
    with pytest.raises(ValueError, match="'allow', 'ask' or 'deny'"):
        ExecRule("ls", "prompt")
    with pytest.raises(ValueError, match="mode"):
        exec_policy(RULES, "sometimes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        exec_policy(["ls"])  # type: ignore[list-item]


# ----------------------------------------------------------------------------- modes

TABLE = {
    #  category:   never    on-request  unless-trusted  on-failure
    "allow": ("allow", "allow", "allow", "allow"),
    "unmatched": ("allow", "allow", "ask", "allow"),
    "ask": ("deny", "ask", "ask", "ask"),
    "deny": ("deny", "deny", "deny", "deny"),
}
MODES = ("never", "on-request", "unless-trusted", "on-failure")
EXAMPLES = {"allow": "git status", "unmatched": "make all", "ask": "git push", "deny": "rm -rf /"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", list(TABLE))
def test_mode_table(kind, mode):
    assert action(EXAMPLES[kind], mode) == TABLE[kind][MODES.index(mode)]


def test_on_failure_allows_unmatched_commands_with_a_failure_key():
    decision = exec_policy(RULES, "on-failure").decide(call("shell", command="make  all"), STATE)
    assert decision.action == "allow" and decision.failure_key == "exec:shell:make  all"
    trusted = exec_policy(RULES, "on-failure").decide(call("shell", command="git status"), STATE)
    assert trusted.action == "allow" and trusted.failure_key is None


def test_never_explains_that_it_cannot_ask():
    decision = exec_policy(RULES, "never").decide(call("shell", command="git push"), STATE)
    assert decision.action == "deny" and "never asks" in decision.reason


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("on-request", "ask"), ("unless-trusted", "ask"), ("never", "allow"), ("on-failure", "allow")],
)
def test_the_model_may_ask_for_approval_in_on_request_and_unless_trusted(mode, expected):
    decision = exec_policy(RULES, mode).decide(
        call("shell", command="ls", request_approval=True, justification="needs network"), STATE
    )
    assert decision.action == expected
    if expected == "ask":
        assert "needs network" in decision.reason
    assert action("ls", "on-request", request_approval="yes") == "allow"  # only a real true counts
    assert (
        exec_policy(RULES, "on-request", request_argument=None)
        .decide(call("shell", command="ls", request_approval=True), STATE)
        .action
        == "allow"
    )


def test_tool_and_argument_selection():
    policy = exec_policy(RULES, "unless-trusted", tools="run_*", argument="argv")
    assert policy.decide(call("shell", command="rm x"), STATE) is None
    assert policy.decide(call("run_cmd", argv=["rm", "x"]), STATE).action == "deny"
    missing = policy.decide(call("run_cmd", command="ls"), STATE)
    assert missing.action == "ask" and "'argv'" in missing.reason
    assert exec_policy(RULES, "never", tools="run_*", argument="argv").decide(call("run_cmd"), STATE).action == "deny"


def test_reasons_name_the_command_and_rule():
    decision = exec_policy(RULES).decide(call("shell", command="ls && rm -rf /"), STATE)
    assert decision.reason.startswith("shell: 'ls && rm -rf /' is forbidden")
    assert "deny rule 'rm'" in decision.reason


# ----------------------------------------------------------------------------- reference model

WORDS = ["git", "status", "push", "rm", "-rf", "ls", "x", "sudo", "/bin/rm", "/usr/bin/git"]
OPERATORS = [" && ", " ; ", " | ", " || ", "\n", " & "]
WRAPPER_WORDS = {"sudo"}
RANK = {"allow": 0, "unmatched": 1, "ask": 2, "deny": 3}

segments_st = st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4), min_size=1, max_size=3)
rules_st = st.lists(
    st.tuples(st.lists(st.sampled_from(WORDS[:-2]), min_size=1, max_size=2), st.sampled_from(["allow", "ask", "deny"])),
    max_size=6,
)


def reference_segment(words, rules):
    """Independent restatement of the README's rules for one simple command."""

    def at(rule_words, start, exact):
        if len(words) - start < len(rule_words):
            return False
        first = words[start]
        ok = first == rule_words[0] or (not exact and first.split("/")[-1] == rule_words[0])
        return ok and words[start + 1 : start + len(rule_words)] == rule_words[1:]

    found = "unmatched"
    for rule_words, act in rules:
        if act == "allow":
            hit = at(rule_words, 0, True)
        else:
            hit = at(rule_words, 0, False) or (
                words[0].split("/")[-1] in WRAPPER_WORDS and any(at(rule_words, i, False) for i in range(1, len(words)))
            )
        if hit and (found == "unmatched" or RANK[act] > RANK[found]):
            found = act
    return found


def reference(segments, rules, mode):
    worst = max((reference_segment(s, rules) for s in segments), key=RANK.__getitem__)
    return TABLE[worst][MODES.index(mode)]


@PROPERTY
@given(segments_st, st.lists(st.sampled_from(OPERATORS), min_size=3, max_size=3), rules_st, st.sampled_from(MODES))
def test_string_commands_match_the_reference_model(segments, operators, rules, mode):
    command = shlex.join(segments[0])
    for operator, segment in zip(operators, segments[1:], strict=False):
        command += operator + shlex.join(segment)
    policy = exec_policy([(r, a) for r, a in rules], mode)
    decision = policy.decide(call("shell", command=command), STATE)
    assert decision.action == reference(segments, rules, mode), (command, policy.classify(command))


@PROPERTY
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=5), rules_st, st.sampled_from(MODES))
def test_argv_commands_match_the_reference_model(argv, rules, mode):
    policy = exec_policy([(r, a) for r, a in rules], mode)
    assert policy.decide(call("shell", command=argv), STATE).action == reference([argv], rules, mode)


SAFE_WORD = st.text(st.sampled_from("abcxyz-_./:, '\"!*?~"), min_size=1, max_size=6)


@PROPERTY
@given(st.lists(SAFE_WORD, min_size=1, max_size=4), rules_st, st.sampled_from(MODES))
def test_an_argv_and_its_quoted_string_decide_alike(argv, rules, mode):
    """Quoting (shlex.join) never changes the decision for words without shell operators or expansions."""
    policy = exec_policy([(r, a) for r, a in rules], mode)
    as_list = policy.decide(call("shell", command=argv), STATE)
    as_text = policy.decide(call("shell", command=shlex.join(argv)), STATE)
    assert as_list.action == as_text.action


@PROPERTY
@given(segments_st, rules_st, st.sampled_from(MODES), st.randoms())
def test_rule_order_does_not_matter(segments, rules, mode, random):
    command = " && ".join(shlex.join(s) for s in segments)
    shuffled = list(rules)
    random.shuffle(shuffled)
    a = exec_policy(list(rules), mode).decide(call("shell", command=command), STATE)
    b = exec_policy(shuffled, mode).decide(call("shell", command=command), STATE)
    assert a.action == b.action
