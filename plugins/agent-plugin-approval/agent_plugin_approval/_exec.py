"""`ExecPolicy`: prefix rules for tools that run shell commands."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs
from attrs import field, frozen

from agent_kernel import RunState, ToolCall

from ._decision import Action, Decision, _action, _globs, _matches_tool, allow, ask, deny

__all__ = ["Classification", "ExecPolicy", "ExecRule", "Mode", "exec_policy"]

Mode = Literal["never", "on-request", "unless-trusted", "on-failure"]
MODES = ("never", "on-request", "unless-trusted", "on-failure")
Category = Literal["allow", "unmatched", "ask", "deny"]

_RANK = {"allow": 0, "unmatched": 1, "ask": 2, "deny": 3}
_PUNCTUATION = "();<>|&`\n"
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "fish"})
#: Words that run the rest of their arguments as a command (``sudo rm ...``).
WRAPPERS = frozenset(
    {
        "sudo",
        "doas",
        "env",
        "nice",
        "nohup",
        "time",
        "timeout",
        "command",
        "exec",
        "builtin",
        "xargs",
        "stdbuf",
        "ionice",
        "chroot",
        "unbuffer",
        "watch",
        "strace",
        "setsid",
        "flock",
    }
)
#: Shell words that only structure commands; stripped before matching (the segment then cannot be trusted).
_RESERVED = frozenset({"{", "}", "!", "if", "then", "else", "elif", "fi", "while", "until", "do", "done", "esac"})
_COMPOUND = frozenset({"for", "case", "select", "function", "[[", "]]"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
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
            allow rules that cannot apply to it). A command that cannot be parsed, or
            an argument that is not a command, is ``"ask"``.
        rule: the deciding rule, if a rule decided.
        detail: why, in words.
        command: the command as shown to people (a string).
    """

    category: Category
    rule: ExecRule | None
    detail: str
    command: str


class _Unparseable(Exception):
    pass


def _basename(word: str) -> str:
    return word.rsplit("/", 1)[-1]


class _Classifier:
    def __init__(self, rules: tuple[ExecRule, ...]) -> None:
        self.rules = rules

    # A segment verdict is (category, rule or None, detail).
    def string(self, script: str, depth: int) -> tuple[Category, ExecRule | None, str]:
        if depth > _MAX_DEPTH:
            return "ask", None, "shell commands are nested too deeply to check"
        script = script.replace("\\\n", "")  # line continuations
        lexer = shlex.shlex(script, posix=True, punctuation_chars=_PUNCTUATION)
        lexer.whitespace_split = True
        lexer.whitespace = " \t\r"  # a newline separates commands, as in a shell
        lexer.commenters = ""  # '#' stays a word: never glue the next line to this one
        try:
            tokens = list(lexer)
        except ValueError as exc:
            raise _Unparseable(str(exc)) from None
        substitution = any("`" in t for t in tokens) or any(
            t.endswith("$") and i + 1 < len(tokens) and tokens[i + 1].startswith("(") for i, t in enumerate(tokens)
        )
        segments: list[tuple[list[str], bool]] = []
        words: list[str] = []
        untrusted = substitution
        for token in tokens:
            if all(c in _PUNCTUATION for c in token):
                if "<" in token or ">" in token:
                    untrusted = True  # a redirection: keep the segment, never trust it
                    continue
                if words:
                    segments.append((words, untrusted))
                words, untrusted = [], substitution
                continue
            if "$" in token or "`" in token:
                untrusted = True  # an expansion: the words run are not the words written
            words.append(token)
        if words:
            segments.append((words, untrusted))
        return self.combine(self.segment(w, u, depth) for w, u in segments)

    def combine(
        self, verdicts: Iterable[tuple[Category, ExecRule | None, str]]
    ) -> tuple[Category, ExecRule | None, str]:
        best: tuple[Category, ExecRule | None, str] | None = None
        for verdict in verdicts:
            if best is None or _RANK[verdict[0]] > _RANK[best[0]]:
                best = verdict
        return best if best is not None else ("unmatched", None, "the command is empty")

    def segment(self, words: list[str], untrusted: bool, depth: int) -> tuple[Category, ExecRule | None, str]:
        while words and (words[0] in _RESERVED or _ASSIGNMENT.match(words[0])):
            words = words[1:]
            untrusted = True
        if not words:
            return "unmatched", None, "no command"
        if words[0] in _COMPOUND:
            untrusted = True
        program = _basename(words[0])
        inner: tuple[Category, ExecRule | None, str] | None = None
        if program in _SHELLS:
            script = _shell_script(words)
            if script is not None:
                inner = self.string(script, depth + 1)
        elif words[0] == "eval":
            inner = self.string(" ".join(words[1:]), depth + 1)
        matched: list[ExecRule] = []
        for rule in self.rules:
            if rule.action == "allow":
                if inner is None and not untrusted and rule.matches(words, exact_program=True):
                    matched.append(rule)
            elif rule.matches(words, exact_program=False) or (
                program in WRAPPERS and any(rule.matches(words, i, exact_program=False) for i in range(1, len(words)))
            ):
                matched.append(rule)
        best = max(matched, key=lambda r: _RANK[r.action], default=None)
        own: tuple[Category, ExecRule | None, str]
        if best is not None:
            own = (best.action, best, f"{shlex.join(words)!r} matches the {best.action} rule {str(best)!r}")
        elif inner is not None:
            own = ("allow", None, "")  # only the script inside decides
        elif untrusted:
            own = ("unmatched", None, f"{shlex.join(words)!r} uses shell features that cannot be trusted by prefix")
        else:
            own = ("unmatched", None, f"{shlex.join(words)!r} matches no rule")
        return own if inner is None else self.combine([inner, own])


def _shell_script(words: Sequence[str]) -> str | None:
    """The script of ``bash -c SCRIPT`` / ``sh -lc SCRIPT``, or None."""
    for i in range(1, len(words)):
        word = words[i]
        if word == "--" or not word.startswith("-"):
            return None
        if not word.startswith("--") and "c" in word[1:]:
            return words[i + 1] if i + 1 < len(words) else None
    return None


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
            try:
                category, rule, detail = self._classifier.string(command, 0)
            except _Unparseable as exc:
                return Classification("ask", None, f"the command cannot be parsed ({exc})", _shown(command))
            return Classification(category, rule, detail, _shown(command))
        if isinstance(command, (list, tuple)) and command and all(isinstance(word, str) for word in command):
            category, rule, detail = self._classifier.segment(list(command), False, 0)
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
