"""An immutable, append-only sequence whose append is O(1).

`RunState.messages` must not be copied on every step (DESIGN §4: per-step cost
flat in run length). A `Log` is a view of the first `n` items of a list that may be
shared with longer views. Appending to the longest view extends the shared list in
place; appending to a shorter view (a fork) copies first. No view ever observes a
change, so every `Log` behaves as an immutable value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class Log(Sequence[T], Generic[T]):
    """Immutable sequence with O(1) amortised `append`; see the module docstring."""

    __slots__ = ("_buf", "_n")

    _buf: list[T]
    _n: int

    def __init__(self, items: Iterable[T] = ()) -> None:
        self._buf = list(items)
        self._n = len(self._buf)

    @classmethod
    def _view(cls, buf: list[T], n: int) -> Log[T]:
        log = object.__new__(cls)
        log._buf = buf
        log._n = n
        return log

    def append(self, item: T) -> Log[T]:
        """Return a new log with `item` at the end; `self` is unchanged."""
        buf = self._buf
        if len(buf) != self._n:  # a longer view shares the list: fork
            buf = buf[: self._n]
        buf.append(item)
        return Log._view(buf, self._n + 1)

    def extend(self, items: Iterable[T]) -> Log[T]:
        """Return a new log with `items` appended; `self` is unchanged."""
        buf = self._buf
        if len(buf) != self._n:
            buf = buf[: self._n]
        buf.extend(items)
        return Log._view(buf, len(buf))

    def replace(self, index: int, item: T) -> Log[T]:
        """Return a new log with the item at `index` replaced (copies: O(n))."""
        items = self._buf[: self._n]
        items[index] = item
        return Log(items)

    def tail(self, start: int) -> Sequence[T]:
        """A read-only view of the items from `start` on, built in O(1)."""
        return _Tail(self, start) if start else self

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[T, ...]: ...
    def __getitem__(self, index: int | slice) -> T | tuple[T, ...]:
        if isinstance(index, slice):
            return tuple(self._buf[: self._n][index])
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError("Log index out of range")
        return self._buf[index]

    def __iter__(self) -> Iterator[T]:
        return islice(self._buf, self._n)

    def __reversed__(self) -> Iterator[T]:
        """Newest first, in O(1) to start (longer views' items are skipped, not copied)."""
        buf = self._buf
        return islice(reversed(buf), len(buf) - self._n, None)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Log):
            return self._n == other._n and (self._buf is other._buf or self._buf[: self._n] == other._buf[: other._n])
        if isinstance(other, (list, tuple)):
            return self._buf[: self._n] == list(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"Log({self._buf[: self._n]!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Log, (self._buf[: self._n],))


class Chain(Sequence[T], Generic[T]):
    """A read-only sequence of `head` followed by `tail`, built in O(1)."""

    __slots__ = ("_head", "_tail")

    def __init__(self, head: tuple[T, ...], tail: Sequence[T]) -> None:
        self._head = head
        self._tail = tail

    def __len__(self) -> int:
        return len(self._head) + len(self._tail)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[T, ...]: ...
    def __getitem__(self, index: int | slice) -> T | tuple[T, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("Chain index out of range")
        head = self._head
        return head[index] if index < len(head) else self._tail[index - len(head)]

    def __iter__(self) -> Iterator[T]:
        yield from self._head
        yield from self._tail

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Chain({list(self)!r})"


class _Tail(Sequence[T], Generic[T]):
    """The items of a `Log` from `start` on."""

    __slots__ = ("_log", "_start")

    def __init__(self, log: Log[T], start: int) -> None:
        self._log = log
        self._start = start

    def __len__(self) -> int:
        return len(self._log) - self._start

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[T, ...]: ...
    def __getitem__(self, index: int | slice) -> T | tuple[T, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("index out of range")
        return self._log[self._start + index]

    def __iter__(self) -> Iterator[T]:
        return islice(iter(self._log), self._start, None)
