"""Shell syntax for `ExecPolicy`: tree-sitter-bash trees, and words resolved to literal text.

Only classifies text: nothing here runs, expands or looks anything up.
"""

from __future__ import annotations

import re
import threading
from typing import NamedTuple

import tree_sitter_bash
from tree_sitter import Language, Node, Parser, Tree

__all__ = [
    "TooComplex",
    "Word",
    "heredoc_script",
    "literal",
    "misread_words",
    "node_text",
    "normalize",
    "parse",
    "resolve",
]

_LANGUAGE = Language(tree_sitter_bash.language())
_local = threading.local()  # a Parser is not safe to share between threads
#: Nodes inside which a backslash-newline is kept as written (bash does not join lines there).
_VERBATIM = frozenset({"raw_string", "comment", "ansi_c_string"})
_MAX_CONTINUATIONS = 200  # each is a parse of the whole text


class TooComplex(Exception):
    """The text is too large or too nested to check."""


class Word(NamedTuple):
    """One word of a command.

    Attributes:
        value: the word after quote removal, or None when it has an expansion or a
            substitution (what it becomes is not known).
        text: the word as written, for messages.
        pattern: unquoted glob or brace characters: the shell may turn it into other words.
        decoded: part of it is ANSI-C quoted (``$'\\x72m'``): known, but written to hide it.
    """

    value: str | None
    text: str
    pattern: bool = False
    decoded: bool = False


def literal(value: str, text: str | None = None) -> Word:
    """A word known exactly (an argv entry, or a word split from a literal string)."""
    return Word(value, value if text is None else text)


def parse(source: bytes) -> tuple[Tree, Node]:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = Parser(_LANGUAGE)
    tree = parser.parse(source)
    return tree, tree.root_node


def node_text(node: Node) -> str:
    return (node.text or b"").decode("utf-8", "surrogatepass")


def join_continuations(source: bytes) -> bytes:
    """Remove every backslash-newline the shell would remove, one at a time, left to right.

    tree-sitter-bash reads ``r\\<newline>m`` as two words; bash reads ``rm``. Inside
    single quotes, comments and quoted here-documents the pair stays (bash keeps it there).
    """
    start = 0
    for _ in range(_MAX_CONTINUATIONS):
        at = source.find(b"\\\n", start)
        if at < 0:
            return source
        run = 0
        while at - run >= 0 and source[at - run] == 0x5C:
            run += 1
        if run % 2 == 0:  # the backslash before the newline is itself escaped
            start = at + 2
            continue
        _, root = parse(source)
        if _kept(root.descendant_for_byte_range(at, at + 1)):
            start = at + 2
            continue
        source = source[:at] + source[at + 2 :]
        start = at
    raise TooComplex(f"more than {_MAX_CONTINUATIONS} line continuations")


def normalize(source: bytes) -> bytes:
    """`source` with the line continuations joined and a space before a backslash that starts a line.

    tree-sitter-bash glues a line starting with a backslash (``\\rm x``) to the word before
    the newline; a space there changes no command (only text inside quotes).
    """
    return join_continuations(source).replace(b"\n\\", b"\n \\")


def misread_words(root: Node) -> list[str]:
    """Unquoted words holding a blank or an operator: the parser and a shell would disagree on them."""
    found = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "word" and _has_separator(node_text(node)):
            found.append(node_text(node))
        stack.extend(node.children)
    return found


def _has_separator(text: str) -> bool:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] in " \t\n;&|<>":
            return True
        i += 1
    return False


def _kept(node: Node | None) -> bool:
    while node is not None:
        if node.type in _VERBATIM:
            return True
        if node.type == "heredoc_body":
            return _quoted_heredoc(node)
        node = node.parent
    return False


def _quoted_heredoc(body: Node) -> bool:
    redirect = body.parent
    if redirect is None:
        return True
    for child in redirect.children:
        if child.type == "heredoc_start":
            return any(c in node_text(child) for c in "'\"\\")
    return True


def heredoc_script(redirect: Node) -> str | None:
    """The text a here-document feeds to its command, when it is literal."""
    quoted = False
    body: Node | None = None
    for child in redirect.children:
        if child.type == "heredoc_start":
            quoted = any(c in node_text(child) for c in "'\"\\")
        elif child.type == "heredoc_body":
            body = child
    if body is None:
        return None
    text = node_text(body)
    if quoted:
        return text
    if any(c.type != "heredoc_content" for c in body.named_children) or "\\" in text or "$" in text or "`" in text:
        return None
    return text


def resolve(node: Node) -> Word:
    """The word `node` (a command name or argument) after quote removal, if it is literal."""
    text = node_text(node)
    parts = _parts(node)
    if parts is None:
        return Word(None, text)
    value, mask = parts
    if "\0" in value:  # bash ends a word at a NUL byte
        value, mask = value[: value.index("\0")], mask[: value.index("\0")]
    return Word(value, text, _is_pattern(mask), _DECODED in mask)


# A part is (value, mask): the mask has the unquoted characters of the value and "\0"
# for quoted or escaped ones, so that only unquoted `*?[{` count as patterns.
def _parts(node: Node) -> tuple[str, str] | None:
    kind = node.type
    text = node_text(node)
    if kind == "command_name":
        return _parts(node.children[0]) if node.child_count == 1 else None
    if kind in ("word", "number"):
        return _unquoted(text)
    if kind == "raw_string":
        if len(text) < 2 or text[0] != "'" or text[-1] != "'":
            return None
        return text[1:-1], "\0" * (len(text) - 2)
    if kind == "string":
        return _double_quoted(node)
    if kind == "concatenation":
        value, mask, at = "", "", node.start_byte
        for child in node.children:
            part = _parts(child) if child.start_byte == at else None
            if part is None:
                return None
            value, mask, at = value + part[0], mask + part[1], child.end_byte
        return (value, mask) if at == node.end_byte else None
    if kind == "ansi_c_string":
        decoded = _ansi_c(text[2:-1]) if text.startswith("$'") and text.endswith("'") and len(text) >= 3 else None
        return None if decoded is None else (decoded, _DECODED * len(decoded))
    return None  # expansions, substitutions, $"...", anything unknown


_DECODED = "\1"  # in a mask: a character that came out of $'...'
_C_ESCAPES = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_DIGITS = {"x": (16, 2), "u": (16, 4), "U": (16, 8)}


def _ansi_c(body: str) -> str | None:
    """The text of ``$'body'``, or None for an escape this does not read."""
    out, i = [], 0
    while i < len(body):
        char = body[i]
        if char != "\\" or i + 1 >= len(body):
            out.append(char)
            i += 1
            continue
        escape = body[i + 1]
        if escape in _C_ESCAPES:
            out.append(_C_ESCAPES[escape])
            i += 2
        elif escape in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[i + 1 :])
            if digits is None:
                return None
            out.append(chr(int(digits.group(), 8) & 0xFF))
            i += 1 + len(digits.group())
        elif escape in _DIGITS:
            base, most = _DIGITS[escape]
            digits = re.match(f"[0-9A-Fa-f]{{1,{most}}}", body[i + 2 :])
            if digits is None:
                return None
            try:
                out.append(chr(int(digits.group(), base)))
            except (ValueError, OverflowError):
                return None
            i += 2 + len(digits.group())
        elif escape == "c" and i + 2 < len(body):
            out.append(chr(ord(body[i + 2]) & 0x1F))
            i += 3
        elif escape in "\\'\"?":
            out.append(escape)
            i += 2
        else:
            out.append(char + escape)
            i += 2
    return "".join(out)


def _unquoted(text: str) -> tuple[str, str]:
    value, mask, i = [], [], 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            if text[i + 1] != "\n":
                value.append(text[i + 1])
                mask.append("\0")
            i += 2
            continue
        value.append(char)
        mask.append(char)
        i += 1
    return "".join(value), "".join(mask)


def _double_quoted(node: Node) -> tuple[str, str] | None:
    children = node.children
    if len(children) < 2 or children[0].type != '"' or children[-1].type != '"':
        return None
    source = node.text or b""
    base = node.start_byte
    value, at = "", children[0].end_byte
    for child in children[1:-1]:
        if child.type != "string_content":
            return None
        gap = source[at - base : child.start_byte - base].decode("utf-8", "surrogatepass")
        value += _dq_unescape(gap + node_text(child))
        at = child.end_byte
    gap = source[at - base : children[-1].start_byte - base].decode("utf-8", "surrogatepass")
    value += _dq_unescape(gap)
    return value, "\0" * len(value)


def _dq_unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in '$`"\\\n':
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _is_pattern(mask: str) -> bool:
    if "*" in mask or "?" in mask:
        return True
    bracket = mask.find("[")
    if bracket >= 0 and "]" in mask[bracket + 1 :]:
        return True
    brace, close = mask.find("{"), mask.rfind("}")
    if 0 <= brace < close:
        inside = mask[brace + 1 : close]
        return "," in inside or ".." in inside
    return False
