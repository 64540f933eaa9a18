"""A small parser for Google-style docstrings: the description and the ``Args:`` entries."""

from __future__ import annotations

import inspect
import re

from attrs import frozen

#: Section headers of Google-style docstrings (lower case, without the colon).
SECTIONS = frozenset(
    {
        "args",
        "arguments",
        "attributes",
        "example",
        "examples",
        "keyword args",
        "keyword arguments",
        "kwargs",
        "methods",
        "note",
        "notes",
        "other parameters",
        "parameters",
        "params",
        "raises",
        "references",
        "return",
        "returns",
        "see also",
        "todo",
        "warning",
        "warnings",
        "yield",
        "yields",
    }
)
#: Sections whose entries describe parameters (or, for classes, attributes).
PARAMETER_SECTIONS = frozenset(
    {
        "args",
        "arguments",
        "attributes",
        "keyword args",
        "keyword arguments",
        "kwargs",
        "other parameters",
        "parameters",
        "params",
    }
)

_HEADER = re.compile(r"^([A-Za-z][A-Za-z ]*):\s*$")
_ENTRY = re.compile(r"^\**([A-Za-z_][A-Za-z0-9_]*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@frozen
class Docstring:
    """What a docstring says about a function or class.

    Attributes:
        description: the text before the first section, paragraphs kept.
        parameters: descriptions from the ``Args:`` (or ``Attributes:``) sections by name.
    """

    description: str
    parameters: dict[str, str]


def parse_docstring(doc: str | None) -> Docstring:
    """Parse a Google-style docstring.

    The description is everything before the first section header. Entries of the
    parameter sections look like ``name: text`` or ``name (type): text``; more
    indented lines continue the entry.

    Args:
        doc: the raw docstring (``__doc__``), or None.

    Returns:
        The parsed `Docstring`; empty when `doc` is None.
    """
    if not doc:
        return Docstring("", {})
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    parameters: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    entry_indent = -1
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        header = _HEADER.match(line)
        if header and indent == 0 and header.group(1).strip().lower() in SECTIONS:
            section, current, entry_indent = header.group(1).strip().lower(), None, -1
            continue
        if section is None:
            description.append(line)
            continue
        if section not in PARAMETER_SECTIONS or not stripped:
            continue
        if indent == 0:  # text back at the left margin ends the section
            section, current = None, None
            continue
        entry = _ENTRY.match(stripped)
        if entry and (entry_indent < 0 or indent <= entry_indent):
            entry_indent = indent
            current = entry.group(1)
            parameters[current] = entry.group(2).strip()
        elif current is not None:
            parameters[current] = f"{parameters[current]} {stripped}".strip()
    return Docstring("\n".join(description).strip(), parameters)
