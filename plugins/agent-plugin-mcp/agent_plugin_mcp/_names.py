"""Kernel tool names for the tools of MCP servers.

A server's tool ``get_time`` becomes the kernel tool ``<server>__get_time``: the
server name, the separator ``__`` (two underscores), the tool name. Kernel tool names
must be accepted by every LLM provider, so they are kept to ``[A-Za-z0-9_-]`` and at
most 64 characters (OpenAI's and Anthropic's function-name rule). MCP allows ``.``
and ``/`` in tool names and up to 128 characters, so:

* a character outside ``[A-Za-z0-9_-]`` becomes ``_``;
* a name that was changed that way and then collides with another tool's name, or a
  name longer than 64 characters, is cut and ends with ``_`` plus six hex digits of
  the SHA-1 of the server's tool name (stable across runs and restarts).

A server name is 1 to 32 characters of ``[A-Za-z0-9_-]``, starts with a letter or
digit, and contains no ``__`` and does not end with ``_``, so the first ``__`` of a
kernel tool name always ends the server name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

SEPARATOR = "__"
MAX_NAME = 64
MAX_SERVER_NAME = 32

_SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_PREFIX = re.compile(r"[A-Za-z0-9_-]*")
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")


def check_server_name(name: str) -> str:
    """Return `name` if it can name a server, else raise ValueError saying why."""
    if not isinstance(name, str) or not name:
        raise ValueError("an MCP server needs a non-empty name, e.g. MCPTools('time', command=...)")
    if len(name) > MAX_SERVER_NAME:
        raise ValueError(f"MCP server name {name!r} is longer than {MAX_SERVER_NAME} characters")
    if not _SERVER_NAME.fullmatch(name) or SEPARATOR in name or name.endswith("_"):
        raise ValueError(
            f"MCP server name {name!r} must be letters, digits, '-' and single '_' "
            f"(no {SEPARATOR!r}, not ending in '_'), starting with a letter or digit"
        )
    return name


def check_prefix(prefix: str) -> str:
    """Return a custom tool prefix if it is usable, else raise ValueError."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix) or len(prefix) > MAX_SERVER_NAME + 2:
        raise ValueError(
            f"tool_prefix {prefix!r} must be at most {MAX_SERVER_NAME + 2} characters of letters, digits, '_' and '-'"
        )
    return prefix


def _digest(remote: str) -> str:
    return hashlib.sha1(remote.encode("utf-8")).hexdigest()[:6]


def kernel_names(prefix: str, remotes: Iterable[str]) -> dict[str, str]:
    """Map each server tool name in `remotes` to its kernel tool name (see the module doc).

    The result does not depend on the order of `remotes`: a name that needs no change
    keeps it, and every rewritten name that collides (with such a name or with another
    rewritten one) gets the hash suffix, so the names stay stable when a server lists
    its tools in another order, as a resumed run needs.
    """
    remotes = list(dict.fromkeys(remotes))
    out: dict[str, str] = {}
    later: list[str] = []
    for remote in remotes:
        name = prefix + remote
        if not _NOT_ALLOWED.search(remote) and len(name) <= MAX_NAME:
            out[remote] = name
        else:
            later.append(remote)
    taken = set(out.values())
    candidates = {remote: prefix + _NOT_ALLOWED.sub("_", remote) for remote in later}
    counts: dict[str, int] = {}
    for name in candidates.values():
        counts[name] = counts.get(name, 0) + 1
    for remote in sorted(later):
        base = name = candidates[remote]
        n = 0
        while len(name) > MAX_NAME or name in taken or counts[base] > 1:
            suffix = "_" + _digest(remote) + (str(n) if n else "")  # n > 0: a SHA-1 prefix collision
            name = base[: MAX_NAME - len(suffix)] + suffix
            if name not in taken:
                break
            n += 1
        out[remote] = name
        taken.add(name)
    return {remote: out[remote] for remote in remotes}
