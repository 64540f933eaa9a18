"""`exec_policy` cannot be talked around: disguised denied commands are denied or asked about, never allowed.

Nothing here runs a command: the policy only classifies strings.
"""

from __future__ import annotations

import shlex

import pytest
from approval_testkit import call, empty_state
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_plugin_approval.policies import exec_policy

STATE = empty_state()
RULES = {"rm": "deny", "ls": "allow"}
MODES = ("never", "on-request", "unless-trusted", "on-failure")
#: The decision for a category in each mode (README table).
DECISION = {
    "allow": dict.fromkeys(MODES, "allow"),
    "unmatched": {"never": "allow", "on-request": "allow", "unless-trusted": "ask", "on-failure": "allow"},
    "ask": {"never": "deny", "on-request": "ask", "unless-trusted": "ask", "on-failure": "ask"},
    "deny": dict.fromkeys(MODES, "deny"),
}
#: The project's hypothesis profile decides how many examples (root conftest.py); this only
#: removes the deadline (a loaded machine would miss it) and the health checks the profile also suppresses.
PROFILE = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def decide(command, mode, rules=RULES):
    return exec_policy(rules, mode).decide(call("shell", command=command), STATE)


# ----------------------------------------------------------------------------- the table

DENIED = "deny"
ASKED = "ask"
EITHER = None  # deny or ask: what a broken command line does depends on how it is read

DISGUISES = [
    # substitutions, anywhere
    ('echo "$(rm -rf ~)"', DENIED),
    ('echo "`rm -rf ~`"', DENIED),
    ("echo `rm -rf ~`", DENIED),
    ("cat <(rm -rf ~)", DENIED),
    ("cat >(rm -rf ~)", DENIED),
    ("echo $(echo $(rm -rf ~))", DENIED),
    ("ls $(rm x)", DENIED),
    ('ls "a" "$(rm x)"', DENIED),
    ("x=$(rm x)", DENIED),
    ("declare -x A=$(rm x)", DENIED),
    ('ls > "$(rm x)"', DENIED),
    ("echo $(( $(rm x) ))", DENIED),
    ("cat <<EOF\n$(rm x)\nEOF", DENIED),
    # shells and their flags, eval, here-strings
    ("bash -o posix -c 'rm -rf ~'", DENIED),
    ("bash -O extglob -c 'rm -rf ~'", DENIED),
    ("sh -c 'rm -rf ~'", DENIED),
    ("bash -xec 'rm -rf ~'", DENIED),
    ("bash -c -x 'rm -rf ~'", DENIED),
    ("bash --norc --noprofile -lc 'rm -rf ~'", DENIED),
    ("/bin/bash -c 'ls && rm -rf ~'", DENIED),
    ("zsh -f -c 'rm x'", DENIED),
    ("fish -c 'rm x'", DENIED),
    ("bash -c 'bash -c \"rm x\"'", DENIED),
    ('eval "rm -rf ~"', DENIED),
    ("eval rm -rf '~'", DENIED),
    ("builtin eval 'rm x'", DENIED),
    ("trap 'rm x' EXIT", DENIED),
    ("bash <<<'rm x'", DENIED),
    ('sh <<< "ls; rm x"', DENIED),
    ("bash <<'EOF'\nrm x\nEOF", DENIED),
    # wrappers, with their options
    ("env -S 'rm -rf ~'", DENIED),
    ("env -S'rm x'", DENIED),
    ("env --split-string='-i rm x'", DENIED),
    ("env -i FOO=1 -u BAR rm x", DENIED),
    ("env -u HOME rm x", DENIED),
    ("/usr/bin/env rm x", DENIED),
    ("sudo -u x rm -rf ~", DENIED),
    ("sudo -E env PATH=/x nice -n 5 timeout -s KILL 5 rm x", DENIED),
    ("nice -n 5 rm -rf ~", DENIED),
    ("nice -5 rm x", DENIED),
    ("timeout 5 rm -rf ~", DENIED),
    ("timeout --kill-after=3 -s 9 5 rm x", DENIED),
    ("nohup rm x &", DENIED),
    ("time -p rm x", DENIED),
    ("command rm x", DENIED),
    ("exec -a foo rm x", DENIED),
    ("stdbuf -oL rm x", DENIED),
    ("ionice -c 3 rm x", DENIED),
    ("setsid -f rm x", DENIED),
    ("chroot / rm x", DENIED),
    ("coproc rm x", DENIED),
    ("busybox rm x", DENIED),
    ("watch -n 1 'rm x'", DENIED),
    ("flock /tmp/lock -c 'rm x'", DENIED),
    ("xargs rm", DENIED),
    ("ls | xargs -0 -n 1 rm -f", DENIED),
    ("xargs -I % sh -c 'rm %'", DENIED),
    ("su -c 'rm -rf ~' root", DENIED),
    ("sudo --no-such-option rm x", DENIED),  # the option is unknown (ask), but rm is still seen
    ("find . -exec rm {} \\;", DENIED),
    ("find . -name '*.o' -execdir rm -f {} +", DENIED),
    ("find . -ok rm {} ';'", DENIED),
    # lists, pipelines, groups, compound commands
    ("ls; rm -rf ~", DENIED),
    ("ls && rm -rf ~", DENIED),
    ("ls || rm -rf ~", DENIED),
    ("ls | rm -rf ~", DENIED),
    ("ls\nrm -rf ~", DENIED),
    ("ls & rm x", DENIED),
    ("(ls; rm -rf ~)", DENIED),
    ("{ ls; rm -rf ~; }", DENIED),
    ("! rm x", DENIED),
    ("if true; then rm x; fi", DENIED),
    ('for f in a; do rm "$f"; done', DENIED),
    ("while rm x; do :; done", DENIED),
    ("case a in a) rm x;; esac", DENIED),
    ("f() { rm x; }; f", DENIED),
    ("ls # a comment\\\nrm x", DENIED),  # a comment does not continue on the next line
    # quoting and paths
    ('"r""m" -rf ~', DENIED),
    ("\\rm -rf ~", DENIED),
    ("'r'm x", DENIED),
    ('"rm" x', DENIED),
    ("/bin/rm x", DENIED),
    ("./rm x", DENIED),
    ("r\\\nm -rf ~", DENIED),
    ("ls\n\\rm x", DENIED),  # tree-sitter-bash alone would read one command `ls` here
    ("ls\n\n  \\rm x", DENIED),
    # what cannot be resolved asks
    ("rm${IFS}-rf${IFS}~", ASKED),
    ("{rm,-rf,~}", ASKED),
    ("/bin/r? -rf ~", ASKED),
    ("/bin/r[m] x", ASKED),
    ("$'\\x7a\\x61\\x70' x", ASKED),  # ANSI-C quoting in a command name asks ...
    ("$'\\x72\\x6d' -rf ~", DENIED),  # ... and is decoded, so a denied name is still denied
    ("$'\\x72\\x6d'", DENIED),
    ("$'\\162\\155' x", DENIED),
    ("$'\\u0072m' x", DENIED),
    ("r$'m' x", DENIED),
    ("$'rm\\x00zz' x", DENIED),  # bash ends the word at the NUL
    ('$"rm" x', ASKED),
    ("$(echo rm) -rf ~", ASKED),
    ("`echo rm` x", ASKED),
    ("$CMD -rf ~", ASKED),
    ("${X:-rm} x", ASKED),
    ('"$SHELL" -c ls', ASKED),
    ('bash -c "$SCRIPT"', ASKED),
    ('eval "$CMD"', ASKED),
    ("eval ls", ASKED),  # eval always asks
    ("echo 'rm x' | bash", ASKED),  # a shell reading its standard input
    ("bash < script.sh", ASKED),
    ("bash -c", ASKED),
    ("bash -o '$(x)' -c ls", ASKED),
    ("bash -o -c 'rm x'", DENIED),  # -o would take -c as its value (ask); the script is still seen
    ("bash --frob -c 'rm x'", DENIED),  # the option is unknown (ask), the script is still seen
    ("bash -c% 'rm x'", EITHER),
    ("source ./x.sh", ASKED),
    (". ./x.sh", ASKED),
    ("alias ls='zap'", ASKED),
    ("xargs -I{} {} x", ASKED),
    ("find . -exec {} \\;", ASKED),
    ("find . $X", ASKED),
    ("sudo -s", ASKED),
    ("ssh host zap", ASKED),
    ("env -S 'zap $HOME'", ASKED),
    ("timeout --frobnicate 5 zap", ASKED),
    ('bash -c \'bash -c "bash -c \\"bash -c \\\\\\"bash -c zap\\\\\\"\\""\'', ASKED),  # too deep
    ("x='a[$(zap)]'; echo $((x))", ASKED),  # arithmetic runs substitutions held in variables
    ("(( y + 1 ))", ASKED),
    ("[[ $n -eq 1 ]]", ASKED),
    ("echo $(( rm ))", ASKED),
    ('echo "unterminated', ASKED),
    ("(ls", ASKED),
    ('echo "unterminated $(rm x)', EITHER),
    ("ls; (rm x", EITHER),
    ("(" * 400 + "rm x" + ")" * 400, EITHER),  # too deep for Python's stack: asked about
    ("echo \\\n" * 300 + "rm x", EITHER),  # too many continuations to re-read: asked about
    # more quoting, comments and argv lists
    ('r""m x', DENIED),
    ("r''m x", DENIED),
    ("\\/bin\\/rm x", DENIED),
    ("/bin//rm x", DENIED),
    ("ls a#b; rm x", DENIED),
    ("$(rm x)", DENIED),  # the name is unknown (ask), but the substitution is resolvable: deny wins
    ("sudo -u root -- bash -c 'rm x'", DENIED),
    ("coproc NAME { rm x; }", DENIED),
    ("time rm x | ls", DENIED),
    (["bash", "-c", "ls; rm x"], DENIED),
    (["sudo", "-u", "x", "rm"], DENIED),
    (["env", "-S", "rm x"], DENIED),
    (["find", ".", "-exec", "rm", "{}", ";"], DENIED),
    (["bash", "-c", "$X"], ASKED),
    (["sh"], ASKED),
    ("doas -s", ASKED),
    ("chroot /srv", ASKED),
    ("let x=1", ASKED),
    ("hash -p /bin/zap ls", ASKED),
    ("sudo -u $WHO rm x", DENIED),  # the value of -u is unknown, where the command starts is not
    ("watch -x rm x", DENIED),
    ("bash5 -c 'rm x'", DENIED),
    ("/usr/local/bin/bash-5.2 -c 'rm x'", DENIED),
    ("tcsh -c 'rm x'", DENIED),
    ("busybox sh -c 'rm x'", DENIED),
    ("echo ${X:-$(rm x)}", DENIED),
    ("ls > >(rm x)", DENIED),
    ("echo ${a[$(rm x)]}", DENIED),
    ("echo $(ls # )\nrm x)", DENIED),  # the comment ends at the newline, inside the substitution
    ("echo $(case x in x) rm x;; esac)", DENIED),
    ('echo "${x:-"$(rm x)"}"', DENIED),
    ("ls <<EOF1 <<EOF2\na\nEOF1\n$(rm x)\nEOF2", DENIED),
    ("ls |& rm x", DENIED),
    ("exec {fd}>$(rm x)", DENIED),
    ("echo $[ $(rm x) ]", DENIED),
    ("cat <<'\\X'\nhi\n\\X\nrm x", ASKED),  # a here-document the parser does not see end
    ("cat <<EOF\nhi\nrm x", ASKED),  # an unterminated here-document
    ("bash -c 'ls' && sudo --frob ls", ASKED),
]


def test_the_table_is_large_enough():
    assert len(DISGUISES) >= 25
    assert len({repr(command) for command, _ in DISGUISES}) == len(DISGUISES)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("command", "expected"), DISGUISES, ids=[repr(c)[1:-1][:60] for c, _ in DISGUISES])
def test_disguised_commands_are_never_allowed(command, expected, mode):
    found = exec_policy(RULES, mode).classify(command)
    decision = decide(command, mode)
    assert decision.action != "allow", (command, found)
    assert found.category in ("deny", "ask"), (command, found)
    if expected is not None:
        assert found.category == expected, (command, found)
        assert decision.action == DECISION[expected][mode], (command, found)


@pytest.mark.parametrize("mode", MODES)
def test_plain_commands_keep_their_decisions(mode):
    assert decide("ls -la", mode).action == "allow"
    assert decide("ls -la ~/src *.py 'a b'", mode).action == "allow"
    assert decide(["ls", "-la"], mode).action == "allow"
    assert decide("ls | wc -l", mode, {**RULES, "wc": "allow"}).action == "allow"
    assert decide("ls | wc -l", mode).action == DECISION["unmatched"][mode]  # wc has no rule
    assert decide("ls && ls; (ls) | ls", mode).action == "allow"
    assert decide("bash -c 'ls -la'", mode).action == "allow"
    assert decide("make all", mode).action == DECISION["unmatched"][mode]
    assert decide("rm x", mode).action == "deny"
    assert decide("echo rm -rf ~", mode).action == DECISION["unmatched"][mode]  # rm is an argument here
    assert decide("ls $'\\x2dla'", mode).action == DECISION["unmatched"][mode]  # decoded, but not trusted


ORDINARY = [
    'git commit -m "fix: a; b && c"',
    "ls -la | grep foo > out.txt 2>&1",
    "cd src && make -j4",
    "python -m pytest -q tests/",
    "echo 'a;b' \"c|d\"",
    'for f in *.py; do echo "$f"; done',
    'grep -rn "foo|bar" .',
    "find . -name '*.py' | xargs wc -l",
    "cat README.md | head -n 5",
    "npm run build 2>&1 | tail -n 20",
    "cat <<'EOF' > notes.txt\nrm is only text here\nEOF",
    "echo $((1 + 2))",
    "[ -f setup.py ] && python setup.py sdist",
    "sudo -u deploy systemctl restart web",
    "timeout 60 cargo test --release",
    "env FOO=1 BAR=2 make test",
    "bash -c 'cd src && make'",
    "git log --oneline | head -n 3 # recent",
]


@pytest.mark.parametrize("command", ORDINARY)
def test_ordinary_commands_are_not_asked_about(command):
    found = exec_policy(RULES).classify(command)
    assert found.category == "unmatched", found  # no rule for most programs: the mode decides
    assert decide(command, "never").action == "allow"


def test_what_is_checked_is_explained():
    policy = exec_policy(RULES)
    found = policy.classify("echo $(rm -rf ~)")
    assert found.category == "deny" and str(found.rule) == "rm" and "deny rule 'rm'" in found.detail
    asked = policy.classify("$(echo rm) -rf ~")
    assert asked.rule is None and "not a plain word" in asked.detail
    assert "cannot be parsed" in policy.classify("{rm,-rf,~}").detail
    assert "standard input" in policy.classify("echo x | bash").detail
    never = decide("$CMD x", "never")
    assert never.action == "deny" and "never asks" in never.reason


def test_expansions_in_arguments_may_match_longer_rules():
    rules = {"git push": "deny", "git": "allow"}
    assert exec_policy(rules).classify("git push").category == "deny"
    assert exec_policy(rules).classify("git $SUB").category == "ask"  # it may be push
    assert exec_policy(rules).classify("git pu*").category == "ask"
    assert exec_policy(rules).classify("git pull").category == "allow"
    assert exec_policy(rules).classify("git pull $BRANCH").category == "unmatched"  # not trusted, not push


def test_allow_rules_never_trust_wrappers_or_scripts_they_cannot_see():
    rules = {"ls": "allow", "bash": "allow", "sudo": "allow"}
    assert exec_policy(rules).classify("bash -c zap").category == "unmatched"
    assert exec_policy(rules).classify("bash -c ls").category == "allow"
    assert exec_policy(rules).classify("sudo ls").category == "allow"
    assert exec_policy(rules).classify("sudo zap").category == "unmatched"
    assert exec_policy(rules).classify("ls() { zap; }; ls").category == "unmatched"
    assert exec_policy(rules).classify("timeout 5 ls").category == "unmatched"  # timeout has no rule


# ----------------------------------------------------------------------------- property

CORES = ["rm -rf x", "/bin/rm x", "\\rm x", '"r"m -f x', "rm"]
SHELL_FLAGS = st.lists(
    st.sampled_from(["-e", "-x", "-o posix", "-O extglob", "-l", "--norc", "-u", "+x", "-eux"]), max_size=3
)
WRAPPER_PREFIXES = st.sampled_from(
    [
        "sudo",
        "sudo -u bob",
        "sudo -E -n --",
        "nice",
        "nice -n 5",
        "nice -10",
        "nohup",
        "timeout 5",
        "timeout -s KILL -k 2 5",
        "env",
        "env -i A=1",
        "env -u HOME B=2",
        "command",
        "command -p",
        "exec",
        "builtin",
        "time",
        "time -p",
        "xargs",
        "xargs -0 -n 1",
        "stdbuf -oL -eL",
        "ionice -c 3",
        "setsid",
        "setsid -w",
        "chroot /",
        "busybox",
        "A=1",
    ]
)


def double_quote(text):
    """`text` in double quotes, as a shell reads it back."""
    for char in '\\"$`':
        text = text.replace(char, "\\" + char)
    return f'"{text}"'


QUOTES = st.sampled_from([shlex.quote, double_quote])


@st.composite
def simple_commands(draw, scripts):
    """A simple command that runs a denied command, and how many times it is re-parsed as a script."""
    kind = draw(st.sampled_from(["wrapper", "shell", "eval", "herestring", "env-S", "find", "script-taking"]))
    text, levels = draw(scripts)
    quote = draw(QUOTES)
    if kind == "wrapper":
        inner, inner_levels = draw(st.deferred(lambda: simple_commands(scripts)) | st.sampled_from(CORES).map(_flat))
        # xargs takes a here-string as its own input: the shell after it reads none.
        prefixes = WRAPPER_PREFIXES.filter(lambda p: not p.startswith("xargs")) if "<<<" in inner else WRAPPER_PREFIXES
        return f"{draw(prefixes)} {inner}", inner_levels
    if kind == "shell":
        shell = draw(st.sampled_from(["bash", "sh", "/bin/bash", "zsh", "dash"]))
        flags = " ".join(draw(SHELL_FLAGS))
        position = draw(st.booleans())
        command = f"{shell} {flags} -c {quote(text)}" if position else f"{shell} -c {flags} {quote(text)}"
        return command, levels + 1
    if kind == "eval":
        return f"eval {quote(text)}", levels + 1
    if kind == "herestring":
        return f"bash <<< {quote(text)}", levels + 1
    if kind == "script-taking":
        template = draw(st.sampled_from(["su -c {} root", "flock /tmp/lock -c {}", "watch -n 1 {}", "trap {} EXIT"]))
        return template.format(quote(text)), levels + 1
    core, core_levels = draw(st.sampled_from(CORES).map(_flat))
    if kind == "find":
        return f"find . -name '*.o' {draw(st.sampled_from(['-exec', '-execdir', '-ok']))} {core} {{}} \\;", core_levels
    return f"env -S {shlex.quote(core)}", core_levels


def _flat(core):
    return core, 0


def compound(parts):
    return st.one_of(
        st.tuples(
            st.sampled_from(["ls && {}", "{} || ls", "ls; {}", "ls | {}", "{} & ls", "ls\n{}", "{} | ls"]), parts
        ),
        st.tuples(st.sampled_from(["( {} )", "{{ {}; }}", "if true; then {}; fi", "while {}; do :; done"]), parts),
        st.tuples(
            st.sampled_from(['echo "$( {} )"', "echo $( {} )", "cat <( {} )", "x=$( {} )", "ls > $( {} )"]), parts
        ),
        # backquotes do not nest without more escaping: only around text without any
        st.tuples(st.sampled_from(["echo `{}`", 'echo "`{}`"']), parts.filter(lambda p: not set("`\\") & set(p[0]))),
        st.builds(lambda p: ("{}", p), simple_commands(parts)),
    ).map(lambda pair: (pair[0].format(pair[1][0]), pair[1][1]))


SCRIPTS = st.recursive(st.sampled_from(CORES).map(_flat), compound, max_leaves=10)


@PROFILE
@given(SCRIPTS, st.sampled_from(MODES))
def test_no_nesting_of_constructs_gets_a_denied_command_allowed(script, mode):
    command, levels = script
    found = exec_policy(RULES, mode).classify(command)
    assert decide(command, mode).action != "allow", (command, found)
    assert found.category in ("deny", "ask"), (command, found)
    if levels <= 4:  # deeper scripts are asked about, never checked
        assert found.category == "deny", (command, found)
