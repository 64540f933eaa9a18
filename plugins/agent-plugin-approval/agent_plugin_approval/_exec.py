"""`ExecPolicy`: prefix rules for tools that run shell commands.

A command string is parsed with tree-sitter-bash, and every command it would run is
classified: in lists and pipelines, subshells and groups, command and process
substitutions (also inside double quotes and here-documents), shell scripts given
to ``bash -c``, ``eval`` and here-strings, the commands wrappers such as ``sudo`` or
``env -S`` run, and ``find -exec``. What cannot be resolved to plain literal words is
at least asked about, never allowed.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any, Literal

import attrs
from attrs import field, frozen
from tree_sitter import Node

from agent_kernel import RunState, ToolCall

from ._decision import Action, Decision, _action, _globs, _matches_tool, allow, ask, deny
from ._shell import TooComplex, Word, heredoc_script, literal, misread_words, node_text, normalize, parse, resolve

__all__ = ["Classification", "ExecPolicy", "ExecRule", "Mode", "exec_policy"]

Mode = Literal["never", "on-request", "unless-trusted", "on-failure"]
MODES = ("never", "on-request", "unless-trusted", "on-failure")
Category = Literal["allow", "unmatched", "ask", "deny"]
Verdict = tuple[Category, "ExecRule | None", str]

_RANK = {"allow": 0, "unmatched": 1, "ask": 2, "deny": 3}
_PUNCTUATION = "();<>|&`\n"
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
_MAX_DEPTH = 4
_SHOWN = 200


def _prefix(value: str | Sequence[str]) -> tuple[str, ...]:
    words = tuple(shlex.split(value)) if isinstance(value, str) else tuple(value)
    if not words:
        raise ValueError("an exec rule needs a non-empty command prefix")
    for word in words:
        if not isinstance(word, str) or not word:
            raise TypeError(f"exec rule prefixes are non-empty strings, got {word!r} in {value!r}")
        if all(c in _PUNCTUATION for c in word):
            raise ValueError(
                f"exec rule prefix {value!r} contains the shell operator {word!r}; rules match one command"
            )
    return words


@frozen
class ExecRule:
    """A command prefix and what to do with commands starting with it.

    Args:
        prefix: the leading words, as a list (``["git", "push"]``) or a string
            split with `shlex` (``"git push"``).
        action: ``"allow"`` (trusted), ``"ask"`` or ``"deny"``.
    """

    prefix: tuple[str, ...] = field(converter=_prefix)
    action: Action = field(validator=_action)

    def matches(self, words: Sequence[str], start: int = 0, *, exact_program: bool) -> bool:
        """True when `words[start:]` begins with the prefix.

        The program word compares by basename too (``/bin/rm`` is ``rm``) unless
        `exact_program` (allow rules: ``/tmp/x/ls`` is not ``ls``).
        """
        prefix = self.prefix
        if len(words) - start < len(prefix):
            return False
        program = words[start]
        if program != prefix[0] and (exact_program or program.rsplit("/", 1)[-1] != prefix[0]):
            return False
        return all(words[start + i] == prefix[i] for i in range(1, len(prefix)))

    def __str__(self) -> str:
        return shlex.join(self.prefix)


def _rules(rules: Iterable[ExecRule | tuple[Any, Any]] | Mapping[Any, Action]) -> tuple[ExecRule, ...]:
    if isinstance(rules, Mapping):
        return tuple(ExecRule(prefix, action) for prefix, action in rules.items())
    if isinstance(rules, (str, ExecRule)):
        raise TypeError("exec_policy takes a mapping {prefix: action} or a list of ExecRule(prefix, action)")
    out = []
    for rule in rules:
        if isinstance(rule, ExecRule):
            out.append(rule)
        elif isinstance(rule, tuple) and len(rule) == 2:
            out.append(ExecRule(*rule))
        else:
            raise TypeError(f"exec rules are ExecRule(prefix, action) or (prefix, action) pairs, got {rule!r}")
    return tuple(out)


def _mode(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {value!r}")


@frozen
class Classification:
    """How a command relates to the rules, before the mode applies.

    Attributes:
        category: ``"deny"`` / ``"ask"`` / ``"allow"`` (the strictest rule matching any
            of its commands), or ``"unmatched"`` (some command matches no rule, or only
            allow rules that cannot apply to it). A command that cannot be parsed or
            resolved to plain literal commands (a command name that is an expansion,
            a script that is not literal, ``eval``...), or an argument that is not a
            command, is at least ``"ask"``.
        rule: the deciding rule, if a rule decided.
        detail: why, in words.
        command: the command as shown to people (a string).
    """

    category: Category
    rule: ExecRule | None
    detail: str
    command: str


def _basename(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ----------------------------------------------------------------------------- what runs what

#: Shells, also versioned (``bash5``, ``bash-5.2``, ``zsh-5.9``): sh bash zsh dash ksh mksh pdksh ash yash
#: posh rbash csh tcsh fish.
_SHELL = re.compile(r"(?:(?:r?ba|da|k|mk|pdk|z|a|ya|po|tc|c)?sh|fish)(?:[-._]?[0-9][0-9.]*)?")
#: Shell options taking a value (``bash -o posix``), per shell; others use ``"oO"``.
_SHELL_VALUED = {"ksh": "oOR", "mksh": "oOT", "fish": "Cdop"}
_SHELL_LONG_FLAGS = _names(
    "--login --noprofile --norc --posix --restricted --verbose --noediting --debugger --dump-strings"
    " --dump-po-strings --pretty-print --protected --interactive --no-config --private --no-execute"
    " --print-rusage-self --help --version"
)
_SHELL_LONG_VALUED = _names(
    "--rcfile --init-file --init-command --debug --debug-output --profile --profile-startup --features"
)
#: Run text as shell commands: checked like a script, and always at least asked about.
_EVALS = frozenset({"eval", "trap"})
#: Run or change what cannot be seen from the command line: always at least asked about.
_OPAQUE_BUILTINS = frozenset(
    {"source", ".", "alias", "enable", "bind", "complete", "compgen", "mapfile", "readarray", "hash", "let", "fc"}
)
_FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir"})


@frozen
class _Options:
    """How a wrapper's options are spelled, so that the command it runs can be found.

    Unknown options are not guessed at: the wrapper is then asked about.
    """

    flags: str = ""  # short options without a value
    valued: str = ""  # short options with a value (attached, or the next word)
    attached: str = ""  # short options whose optional value can only be attached (``xargs -i{}``)
    long_flags: frozenset[str] = field(default="", converter=_names)
    long_valued: frozenset[str] = field(default="", converter=_names)
    operands: int = 0  # words before the command (``timeout DURATION``, ``chroot NEWROOT``)
    numeric: bool = False  # ``nice -5``
    split: frozenset[str] = frozenset()  # ``env -S STRING``: the string's words take the option's place
    shell: frozenset[str] = frozenset()  # options that start a shell when no command is given ("*": always)


_WRAPPER_OPTIONS: dict[str, _Options] = {
    "sudo": _Options(
        flags="AbBEHhiKklnNPSsVv",
        valued="CDghpRrTtUu",
        long_flags="--askpass --background --bell --preserve-env --edit --help --set-home --login"
        " --remove-timestamp --reset-timestamp --list --non-interactive --preserve-groups --shell --stdin"
        " --version --validate",
        long_valued="--close-from --chdir --chroot --group --host --prompt --role --type --command-timeout"
        " --other-user --user",
        shell=frozenset({"s", "i", "--shell", "--login"}),
    ),
    "doas": _Options(flags="nsL", valued="uC", shell=frozenset({"s"})),
    "env": _Options(
        flags="i0v-",
        valued="uCSP",
        long_flags="--ignore-environment --null --debug --list-signal-handling --block-signal"
        " --default-signal --ignore-signal",
        long_valued="--unset --chdir --split-string",
        split=frozenset({"S", "--split-string"}),
    ),
    "nice": _Options(valued="n", long_valued="--adjustment", numeric=True),
    "nohup": _Options(),
    "time": _Options(
        flags="pvaq",
        valued="of",
        long_flags="--portability --verbose --append --quiet",
        long_valued="--output --format",
    ),
    "timeout": _Options(
        flags="v",
        valued="ks",
        long_flags="--preserve-status --foreground --verbose",
        long_valued="--kill-after --signal",
        operands=1,
    ),
    "command": _Options(flags="pvV"),
    "builtin": _Options(),
    "exec": _Options(flags="cl", valued="a"),
    "coproc": _Options(),
    "busybox": _Options(),
    "xargs": _Options(
        flags="0prtxo",
        attached="eil",
        valued="adEILnPs",
        long_flags="--null --eof --replace --max-lines --interactive --no-run-if-empty --verbose --exit"
        " --open-tty --show-limits",
        long_valued="--arg-file --delimiter --max-args --max-procs --max-chars --process-slot-var",
    ),
    "stdbuf": _Options(valued="ioe", long_valued="--input --output --error"),
    "ionice": _Options(
        flags="t", valued="cnpPu", long_flags="--ignore", long_valued="--class --classdata --pid --pgid --uid"
    ),
    "chroot": _Options(long_flags="--skip-chdir", long_valued="--userspec --groups", operands=1, shell=frozenset("*")),
    "unbuffer": _Options(flags="p"),
    "watch": _Options(
        flags="bcCegprtwx",
        attached="d",
        valued="nq",
        long_flags="--beep --color --no-color --differences --errexit --chgexit --precise --no-title --no-wrap"
        " --no-linewrap --exec --no-rerun",
        long_valued="--interval --equexit",
    ),
    "strace": _Options(flags="cCdDfFhikqrtTvVwxyzZn", valued="abeEIoOpPsSuUX"),
    "setsid": _Options(flags="cfw", long_flags="--ctty --fork --wait"),
    "flock": _Options(
        flags="sexnoFu",
        valued="wE",
        long_flags="--shared --exclusive --unlock --nonblock --nb --no-fork --close --verbose",
        long_valued="--timeout --wait --conflict-exit-code",
        operands=1,
    ),
    "taskset": _Options(flags="acp", operands=1),
}
#: Programs that run a command given in their arguments, in ways this policy does not
#: parse: always at least asked about (deny rules still see the words and scripts inside).
_OPAQUE_WRAPPERS = frozenset(
    {
        "su", "runuser", "pkexec", "sg", "ssh", "parallel", "script", "unshare", "nsenter", "firejail", "bwrap",
        "systemd-run", "valgrind", "ltrace", "gdb", "numactl", "cgexec", "proot", "fakeroot", "faketime",
        "torsocks", "proxychains", "proxychains4", "rlwrap", "xvfb-run", "dbus-run-session", "at", "batch",
        "chrt", "prlimit", "cpulimit", "trickle", "tini", "dumb-init", "daemonize", "start-stop-daemon",
        "runcon", "chpst", "setpriv", "sandbox-exec", "catchsegv", "nocache", "caffeinate", "tsp", "entr",
    }
)  # fmt: skip
#: Words that run the rest of their arguments as a command (``sudo rm ...``).
WRAPPERS = frozenset(_WRAPPER_OPTIONS) | _OPAQUE_WRAPPERS


def _unwrap(words: Sequence[Word], spec: _Options) -> tuple[list[Word] | None, list[str], dict[str, str | None]]:
    """The command a wrapper runs (``[]``: none), problems found, and the options seen.

    The command is None when where it starts cannot be told.
    """
    words = list(words)
    problems: list[str] = []
    seen: dict[str, str | None] = {}
    program = words[0].text
    i = 1
    while i < len(words):
        word = words[i]
        value = word.value
        if value is None or word.pattern:
            problems.append(f"{program} has an option that is not a plain word ({word.text!r})")
            return None, problems, seen
        if value == "--":
            i += 1
            break
        if value == "-" and "-" in spec.flags:
            i += 1
            continue
        option: str | None = None
        argument: str | None = None
        step = 1
        if value.startswith("--"):
            option, equals, rest = value.partition("=")
            if option in spec.long_valued and not equals:
                step = 2
                if i + 1 >= len(words):
                    problems.append(f"{program} {option} lacks its value")
                    return None, problems, seen
                argument = words[i + 1].value
            elif option in spec.long_valued or option in spec.long_flags:
                argument = rest if equals else None
            else:
                problems.append(f"{program} has an option this policy does not know ({option})")
                return None, problems, seen
            seen[option] = argument
        elif value.startswith("-") and len(value) > 1:
            if spec.numeric and value[1:].isdigit():
                i += 1
                continue
            for j in range(1, len(value)):
                letter = value[j]
                if letter in spec.attached:
                    seen[letter] = value[j + 1 :] or None
                    break
                if letter in spec.valued:
                    option = letter
                    if j + 1 < len(value):
                        argument = value[j + 1 :]
                    elif i + 1 < len(words):
                        argument, step = words[i + 1].value, 2
                    else:
                        problems.append(f"{program} -{letter} lacks its value")
                        return None, problems, seen
                    seen[letter] = argument
                    break
                if letter in spec.flags:
                    seen[letter] = None
                    continue
                problems.append(f"{program} has an option this policy does not know (-{letter})")
                return None, problems, seen
        else:
            break
        if option is not None and option in spec.split:
            if argument is None:
                problems.append(f"{program} {option} splits a string that is not literal")
                return None, problems, seen
            if any(c in argument for c in "$\\"):
                problems.append(f"{program} {option} expands variables or escapes that cannot be checked")
            try:
                parts = shlex.split(argument)
            except ValueError:
                problems.append(f"{program} {option} has a string that cannot be split")
                return None, problems, seen
            words[i : i + step] = [literal(part) for part in parts]
            continue
        i += step
    i += spec.operands
    return (words[i:] if i < len(words) else []), problems, seen


# ----------------------------------------------------------------------------- rule matching

_NO, _MAYBE, _YES = 0, 1, 2


def _match(rule: ExecRule, words: Sequence[Word], start: int, *, exact_program: bool) -> int:
    """Whether `words[start:]` begin with the rule's prefix: yes, no, or maybe (expansions)."""
    found = _YES
    for i, expected in enumerate(rule.prefix):
        if start + i >= len(words):
            return _NO
        word = words[start + i]
        value = word.value
        if value is None:
            return _MAYBE  # an expansion may become any words, or none
        if i == 0 and not exact_program:
            value = _basename(value)
        if word.pattern:
            if "{" not in value and not fnmatchcase(expected, value):
                return _NO
            found = _MAYBE
        elif value != expected:
            return _NO
    return found


def _combine(verdicts: Iterable[Verdict]) -> Verdict:
    """The strictest verdict (the first of equals), or unmatched for none."""
    best: Verdict | None = None
    for verdict in verdicts:
        if best is None or _RANK[verdict[0]] > _RANK[best[0]]:
            best = verdict
    return best if best is not None else ("unmatched", None, "the command is empty")


def _ask(detail: str) -> Verdict:
    return ("ask", None, detail)


# ----------------------------------------------------------------------------- the classifier

#: Nodes that only sequence the commands inside them: these can still be trusted.
_TRANSPARENT = frozenset({"program", "list", "pipeline", "subshell"})
_SUBSTITUTIONS = frozenset({"command_substitution", "process_substitution"})
_STATEMENTS = frozenset(
    {
        "command", "redirected_statement", "list", "pipeline", "subshell", "compound_statement", "if_statement",
        "while_statement", "for_statement", "c_style_for_statement", "case_statement", "function_definition",
        "negated_command", "ERROR",
    }
)  # fmt: skip


class _Classifier:
    def __init__(self, rules: tuple[ExecRule, ...]) -> None:
        self.rules = rules

    def string(self, script: str, depth: int) -> Verdict:
        """A command line run by a shell."""
        if depth > _MAX_DEPTH:
            return _ask("shell commands are nested too deeply to check")
        try:
            _tree, root = parse(normalize(script.encode("utf-8", "surrogatepass")))
            verdicts: list[Verdict] = []
            if root.has_error:
                verdicts.append(_ask("the command cannot be parsed (a shell syntax error, or something left open)"))
            misread = misread_words(root)
            if misread:
                verdicts.append(_ask(f"the words of the command cannot be told apart reliably ({misread[0]!r})"))
            verdicts.extend(self.statement(root, False, depth))
        except (RecursionError, TooComplex) as exc:
            return _ask(f"the command is too complex to check ({exc})")
        return _combine(verdicts)

    def statement(self, node: Node, untrusted: bool, depth: int, stdin: str | None = None) -> Iterator[Verdict]:
        kind = node.type
        if kind == "command":
            yield from self.command(node, untrusted, depth, stdin)
        elif kind in _TRANSPARENT:
            for child in node.named_children:
                yield from self.statement(child, untrusted, depth)
        elif kind == "comment":
            return
        elif kind == "redirected_statement":
            body = node.child_by_field_name("body")
            redirects = [child for child in node.named_children if body is None or child != body]
            for redirect in redirects:
                yield from self.nested(redirect, depth)
            if body is None:
                yield ("unmatched", None, f"{_shown(node_text(node))!r} only redirects")
            else:
                yield from self.statement(body, True, depth, _stdin(redirects, stdin))
        elif kind == "ERROR":
            yield _ask(f"the command cannot be parsed near {_shown(node_text(node))!r}")
            for child in node.named_children:
                yield from self.statement(child, True, depth)
        else:
            # Compound commands, functions, tests, assignments... and, below them, words:
            # never trusted, and every command anywhere inside is checked.
            yield ("unmatched", None, f"{_shown(node_text(node))!r} uses shell syntax that cannot be trusted by prefix")
            if _evaluates_variables(node):
                yield _ask(_ARITHMETIC.format(_shown(node_text(node))))
            for child in node.named_children:
                yield from self.statement(child, True, depth)

    def nested(self, node: Node, depth: int) -> Iterator[Verdict]:
        """The commands inside a word, an assignment or a redirection (substitutions)."""
        kind = node.type
        if kind in _SUBSTITUTIONS:
            for child in node.named_children:
                yield from self.statement(child, False, depth)
        elif kind in _STATEMENTS:
            yield from self.statement(node, True, depth)
        else:
            if _evaluates_variables(node):
                yield _ask(_ARITHMETIC.format(_shown(node_text(node))))
            for child in node.named_children:
                yield from self.nested(child, depth)

    def command(self, node: Node, untrusted: bool, depth: int, stdin: str | None) -> Iterator[Verdict]:
        words: list[Word] = []
        redirects: list[Node] = []
        for i, child in enumerate(node.children):
            name = node.field_name_for_child(i)
            if name in ("name", "argument"):
                words.append(resolve(child))
                yield from self.nested(child, depth)
            elif name == "redirect" or child.type.endswith("_redirect"):
                untrusted = True
                redirects.append(child)
                yield from self.nested(child, depth)
            elif child.is_named:  # leading assignments, and anything unexpected
                untrusted = True
                yield from self.nested(child, depth)
        if redirects:
            stdin = _stdin(redirects, stdin)
        yield self.argv(words, untrusted, depth, stdin)

    def argv(self, words: Sequence[Word], untrusted: bool, depth: int, stdin: str | None = None) -> Verdict:
        """One simple command: a program and its arguments."""
        words = list(words)
        while words and words[0].value is not None and _ASSIGNMENT.match(words[0].value):
            words.pop(0)
            untrusted = True
        if not words:
            return ("unmatched", None, "no command")
        shown = _shown(" ".join(word.text for word in words))
        program = words[0]
        if program.value is None or program.pattern:
            return _ask(
                f"{shown!r} runs a command whose name is not a plain word ({program.text!r}: an expansion,"
                " substitution, glob or brace pattern), so what runs cannot be checked"
            )
        untrusted = untrusted or any(word.value is None or word.decoded for word in words)
        name = _basename(program.value)
        inner: list[Verdict] = []
        if program.decoded:
            inner.append(_ask(f"{shown!r} writes its command name in ANSI-C quoting ({program.text!r})"))
        script_decides = scan = False
        if _SHELL.fullmatch(name):
            found = self.shell(words, depth, stdin, shown)
            if found is not None:
                inner.append(found)
                script_decides = True
        elif name in _EVALS:
            inner.extend(self.evaluated(words, depth, shown))
            script_decides = True
        elif name in _OPAQUE_BUILTINS:
            inner.append(_ask(f"{shown!r} uses {name}, which runs or changes what the command line does not show"))
        elif name == "find":
            inner.extend(self.find(words, untrusted, depth, shown))
        elif name in _WRAPPER_OPTIONS:
            inner.extend(self.wrapper(name, words, untrusted, depth, stdin, shown))
            scan = True
        elif name in _OPAQUE_WRAPPERS:
            inner.append(_ask(f"{shown!r}: {name} runs a command this policy cannot pick out of its arguments"))
            inner.extend(self.scripts(words, depth))
            scan = True
        return _combine([*inner, self.own(words, untrusted, script_decides, scan, shown)])

    def own(self, words: list[Word], untrusted: bool, script_decides: bool, scan: bool, shown: str) -> Verdict:
        """The rules matching the command's own words."""
        matched: list[Verdict] = []
        for rule in self.rules:
            if rule.action == "allow":
                if not untrusted and not script_decides and _match(rule, words, 0, exact_program=True) == _YES:
                    matched.append(("allow", rule, f"{shown!r} matches the allow rule {str(rule)!r}"))
                continue
            found = _match(rule, words, 0, exact_program=False)
            if found == _MAYBE:
                matched.append(("ask", rule, f"{shown!r} may match the {rule.action} rule {str(rule)!r} once expanded"))
            elif found == _YES or (
                scan and any(_match(rule, words, i, exact_program=False) == _YES for i in range(1, len(words)))
            ):
                matched.append((rule.action, rule, f"{shown!r} matches the {rule.action} rule {str(rule)!r}"))
        if matched:
            return _combine(matched)
        if script_decides:
            return ("allow", None, "")  # only the script inside decides
        if untrusted:
            return ("unmatched", None, f"{shown!r} uses shell features that cannot be trusted by prefix")
        return ("unmatched", None, f"{shown!r} matches no rule")

    def shell(self, words: list[Word], depth: int, stdin: str | None, shown: str) -> Verdict | None:
        """The script a shell runs (``bash -c``, a here-string), or None for a script file."""
        name = _basename(words[0].value or "")
        valued = _SHELL_VALUED.get(name, "oO")
        command = reads_stdin = False
        script: Word | None = None
        i = 1
        while i < len(words) and script is None:
            word, value = words[i], words[i].value
            if value is None or word.pattern:
                return self.unparsed(words, depth, f"{shown!r}: a shell option is not a plain word ({word.text!r})")
            if value in ("--", "-"):
                i += 1
                break
            if value.startswith("--"):
                option, equals, rest = value.partition("=")
                if option == "--command":  # fish
                    command = True
                    if equals:
                        script = literal(rest)
                    i += 1
                elif option in _SHELL_LONG_FLAGS:
                    i += 1
                elif option in _SHELL_LONG_VALUED:
                    i += 1 if equals else 2
                else:
                    return self.unparsed(
                        words, depth, f"{shown!r}: the shell option {option!r} is not known to this policy"
                    )
                continue
            if value[0] not in "-+" or len(value) == 1:
                break
            step = 1
            for j in range(1, len(value)):
                letter = value[j]
                if letter == "c":
                    command = True
                    if name == "fish":  # fish -c takes the script as its value
                        if j + 1 < len(value):
                            script = literal(value[j + 1 :])
                        elif i + step < len(words):
                            script, step = words[i + step], step + 1
                        break
                elif letter in valued:
                    argument = words[i + step].value if i + step < len(words) else None
                    if argument is None or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]*", argument):
                        return self.unparsed(
                            words, depth, f"{shown!r}: the shell option -{letter} has a value this policy cannot read"
                        )
                    step += 1
                elif letter in "si" and value[0] == "-":
                    reads_stdin = True
                elif not letter.isalpha():
                    return self.unparsed(
                        words, depth, f"{shown!r}: the shell option {value!r} is not known to this policy"
                    )
            i += step
        operands = words[i:]
        if command:
            if script is None and operands:
                script = operands[0]
            if script is None:
                return _ask(f"{shown!r}: the shell's -c script is missing (it would come from elsewhere)")
            if script.value is None or script.pattern:
                return _ask(f"{shown!r} runs a script that is not a literal string ({script.text!r})")
            return self.string(script.value, depth + 1)
        if operands and not reads_stdin:
            return None  # a script file: its contents are not known here, the rules decide
        if stdin is not None:
            return self.string(stdin, depth + 1)
        return _ask(f"{shown!r} reads commands from its standard input, which cannot be checked")

    def evaluated(self, words: list[Word], depth: int, shown: str) -> list[Verdict]:
        """``eval ARGS`` (the words joined) or ``trap SCRIPT SIGNAL...``."""
        verdicts = [_ask(f"{shown!r} runs text as shell commands ({words[0].text})")]
        operands = words[1:]
        if operands and operands[0].value == "--":
            operands = operands[1:]
        if _basename(words[0].value or "") == "trap":
            if not operands or (operands[0].value or "").startswith("-"):
                return verdicts
            operands = operands[:1]
        if any(word.value is None for word in operands):
            return verdicts
        verdicts.append(self.string(" ".join(word.value or "" for word in operands), depth + 1))
        return verdicts

    def find(self, words: list[Word], untrusted: bool, depth: int, shown: str) -> list[Verdict]:
        """The commands of ``find -exec/-execdir/-ok/-okdir COMMAND... ;``."""
        verdicts: list[Verdict] = []
        if any(word.value is None or (word.pattern and word.value.startswith("-")) for word in words[1:]):
            verdicts.append(_ask(f"{shown!r}: find has arguments that are not plain words (it can run commands)"))
        i = 1
        while i < len(words):
            if words[i].value not in _FIND_EXEC:
                i += 1
                continue
            end = i + 1
            while end < len(words) and words[end].value not in (";", "+"):
                end += 1
            command = words[i + 1 : end]
            if not command:
                verdicts.append(_ask(f"{shown!r}: find {words[i].value} has no command"))
            elif "{}" in (command[0].value or ""):
                verdicts.append(_ask(f"{shown!r}: find runs the files it finds"))
            else:
                verdicts.append(self.argv(command, untrusted, depth))
            i = end + 1
        return verdicts

    def wrapper(
        self, name: str, words: list[Word], untrusted: bool, depth: int, stdin: str | None, shown: str
    ) -> list[Verdict]:
        """The command a wrapper (``sudo``, ``env``, ``timeout``...) runs."""
        if name == "flock":
            for i, word in enumerate(words[1:-1], 1):
                if word.value in ("-c", "--command"):
                    return [self.script(words[i + 1], depth, shown)]
        command, problems, seen = _unwrap(words, _WRAPPER_OPTIONS[name])
        verdicts = [_ask(f"{shown!r}: {problem}") for problem in problems]
        if problems:
            verdicts.extend(self.scripts(words, depth))
        if command is None:
            return verdicts
        if not command:
            shell = _WRAPPER_OPTIONS[name].shell
            if "*" in shell or shell & seen.keys():
                verdicts.append(_ask(f"{shown!r} starts a shell that reads commands from its standard input"))
            return verdicts
        if name == "watch" and not {"x", "--exec"} & seen.keys():
            if any(word.value is None for word in command):
                verdicts.append(_ask(f"{shown!r}: watch runs a script that is not literal"))
            else:
                verdicts.append(self.string(" ".join(word.value or "" for word in command), depth + 1))
            return verdicts
        if name == "xargs":
            stdin = None  # xargs reads its own standard input
            marks = [value or "{}" for key, value in seen.items() if key in ("I", "i", "--replace")]
            if any(mark in (command[0].value or "") for mark in marks):
                verdicts.append(_ask(f"{shown!r}: xargs puts its input into the command name"))
        verdicts.append(self.argv(command, untrusted, depth, stdin))
        return verdicts

    def script(self, word: Word, depth: int, shown: str) -> Verdict:
        if word.value is None or word.pattern:
            return _ask(f"{shown!r} runs a script that is not a literal string ({word.text!r})")
        return self.string(word.value, depth + 1)

    def unparsed(self, words: list[Word], depth: int, detail: str) -> Verdict:
        """Asked about: `detail` says what could not be parsed; a denied script among the words still denies."""
        return _combine([_ask(detail), *self.scripts(words, depth)])

    def scripts(self, words: list[Word], depth: int) -> list[Verdict]:
        """Literal arguments that look like command lines (``su -c 'rm -rf /'``), checked as scripts."""
        return [
            self.string(word.value, depth + 1)
            for word in words[1:]
            if word.value is not None and any(c in word.value for c in " \t\n;&|()<>`$")
        ]


_ARITHMETIC = "{!r} evaluates variables as arithmetic, which runs the commands their text may hold (x[$(...)])"
_ARITHMETIC_TESTS = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge"})
_VARIABLES = frozenset({"variable_name", "simple_expansion", "expansion", "subscript", "ERROR"})


def _evaluates_variables(node: Node) -> bool:
    """An arithmetic context (``$((x))``, ``((x))``, ``for ((...))``, ``[[ x -eq 1 ]]``) reading a variable."""
    kind = node.type
    if kind == "test_command":
        if not node.children or node.children[0].type != "[[":
            return False
        if not _has(node, lambda n: n.type == "test_operator" and node_text(n) in _ARITHMETIC_TESTS):
            return False
    elif not (
        kind in ("arithmetic_expansion", "c_style_for_statement")
        or (kind == "compound_statement" and node.child_count and node.children[0].type == "((")
    ):
        return False
    return _has(node, lambda n: n.type in _VARIABLES)


def _has(node: Node, test: Callable[[Node], bool]) -> bool:
    stack = list(node.children)
    while stack:
        current = stack.pop()
        if test(current):
            return True
        stack.extend(current.children)
    return False


def _stdin(redirects: Sequence[Node], inherited: str | None) -> str | None:
    """The literal text a here-string or here-document feeds, or None (unknown)."""
    found = inherited
    for redirect in redirects:
        if redirect.type == "herestring_redirect":
            words = redirect.named_children
            found = resolve(words[-1]).value if words else None
        elif redirect.type == "heredoc_redirect":
            found = heredoc_script(redirect)
        elif redirect.type == "file_redirect" and any(
            not child.is_named and node_text(child).startswith("<") for child in redirect.children
        ):
            found = None
    return found


def _shown(command: Any) -> str:
    text = command if isinstance(command, str) else shlex.join(command)
    text = " ".join(text.split()) if "\n" not in text else text.replace("\n", "; ")
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


_MISSING: Any = object()


@frozen
class ExecPolicy:
    """Prefix rules for command-running tools, applied according to a mode.

    See `exec_policy` for the arguments and the README for the full rules.
    """

    rules: tuple[ExecRule, ...] = field(converter=_rules)
    mode: Mode = field(default="unless-trusted", validator=_mode)
    tools: tuple[str, ...] = field(converter=_globs, default=("shell", "bash", "exec"), kw_only=True)
    argument: str = field(default="command", kw_only=True)
    request_argument: str | None = field(default="request_approval", kw_only=True)
    justification_argument: str | None = field(default="justification", kw_only=True)
    _classifier: _Classifier = field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_classifier", _Classifier(self.rules))

    def classify(self, command: Any) -> Classification:
        """Classify `command` (a string for a shell, or an argv list) against the rules."""
        if isinstance(command, str):
            category, rule, detail = self._classifier.string(command, 0)
            return Classification(category, rule, detail, _shown(command))
        if isinstance(command, (list, tuple)) and command and all(isinstance(word, str) for word in command):
            words = [literal(word, shlex.quote(word)) for word in command]
            try:
                category, rule, detail = self._classifier.argv(words, False, 0)
            except RecursionError:
                category, rule, detail = "ask", None, "the command is nested too deeply to check"
            return Classification(category, rule, detail, _shown(command))
        if isinstance(command, (list, tuple)) and not command:
            return Classification("unmatched", None, "the command is empty", "")
        return Classification("ask", None, "it is not a command string or a list of strings", repr(command)[:_SHOWN])

    def decide(self, call: ToolCall, state: RunState) -> Decision | None:
        if not _matches_tool(self.tools, call.name):
            return None
        arguments = call.arguments
        command = arguments.get(self.argument, _MISSING)
        if command is _MISSING:
            found = Classification("ask", None, f"the call has no {self.argument!r} argument", "")
        else:
            found = self.classify(command)
        shown = f"{call.name}: {found.command!r}" if found.command else call.name
        category, mode = found.category, self.mode
        if category == "deny":
            return deny(f"{shown} is forbidden: {found.detail}")
        if category == "ask":
            if mode == "never":
                return deny(f"{shown} would need approval ({found.detail}), and this policy never asks")
            return ask(f"{shown} requires approval: {found.detail}")
        requested = self._requested(arguments) if mode in ("on-request", "unless-trusted") else None
        if requested is not None:
            return ask(f"{shown}: the model asks for approval{': ' + requested if requested else ''}")
        if category == "allow" or mode in ("never", "on-request"):
            return allow()
        if mode == "unless-trusted":
            return ask(f"{shown} is not trusted: {found.detail}")
        # on-failure: run it; once it has failed, ask before running it again.
        exact = command.strip() if isinstance(command, str) else shlex.join(command)
        key = f"exec:{call.name}:{exact}"
        return allow(f"{shown} runs without approval until it fails", failure_key=key)

    def _requested(self, arguments: Mapping[str, Any]) -> str | None:
        """The model's justification when it asked for approval (\"\" without one), else None."""
        if self.request_argument is None or arguments.get(self.request_argument) is not True:
            return None
        if self.justification_argument is None:
            return ""
        justification = arguments.get(self.justification_argument)
        return justification if isinstance(justification, str) else ""


def exec_policy(
    rules: Iterable[ExecRule | tuple[Any, Any]] | Mapping[Any, Action] = (),
    mode: Mode = "unless-trusted",
    *,
    tools: str | Iterable[str] = ("shell", "bash", "exec"),
    argument: str = "command",
    request_argument: str | None = "request_approval",
    justification_argument: str | None = "justification",
) -> ExecPolicy:
    """Prefix rules for command-running tools.

    Args:
        rules: ``{"git status": "allow", "git push": "ask", "rm": "deny"}`` or a list
            of `ExecRule` / ``(prefix, action)`` pairs. Order does not matter: when
            several rules match, deny beats ask beats allow.
        mode: ``"never"``, ``"on-request"``, ``"unless-trusted"`` or ``"on-failure"``.
        tools: glob(s) of the tools this policy applies to (others: no opinion).
        argument: the argument holding the command (a string, or a list of words).
        request_argument: a boolean argument with which the model asks for
            approval itself (``on-request`` and ``unless-trusted``), or None.
        justification_argument: the argument with the model's reason for asking.

    .. versionadded:: 0.1
    """
    return ExecPolicy(
        rules,
        mode,
        tools=tools,
        argument=argument,
        request_argument=request_argument,
        justification_argument=justification_argument,
    )
