"""`CodecJournal`: an in-memory journal that stores entries as encoded text."""

from __future__ import annotations

from collections.abc import Sequence

from ..journal import Codec, Entry, check_append

__all__ = ["CodecJournal"]


class CodecJournal:
    """An in-memory journal that keeps every entry as the text the agent's codec makes.

    Everything a run journals is encoded on `append` and decoded on `load`, as a
    persistent journal would do, so a test resuming through it proves that the
    plugin's patches and state values round-trip (DESIGN §4). Register it with
    ``runtime.set_journal(journal)``; share one between two agents to simulate
    a second process.
    """

    def __init__(self) -> None:
        self.codec: Codec | None = None
        self.texts: dict[str, list[str]] = {}
        self._attempts: dict[str, int] = {}

    def bind(self, codec: Codec) -> None:
        self.codec = codec

    def _codec(self) -> Codec:
        if self.codec is None:
            raise RuntimeError("CodecJournal used before bind(codec)")
        return self.codec

    async def claim(self, run_id: str) -> int:
        attempt = self._attempts.get(run_id, 0) + 1
        self._attempts[run_id] = attempt
        self.texts.setdefault(run_id, [])
        return attempt

    async def append(self, run_id: str, attempt: int, entries: Sequence[Entry], *, at: int) -> None:
        texts = self.texts.get(run_id, [])
        check_append(run_id, attempt, self._attempts.get(run_id, 0), at, len(texts))
        codec = self._codec()
        encoded = [codec.encode(entry) for entry in entries]  # encode all first: nothing half-written
        texts.extend(encoded)

    async def load(self, run_id: str) -> list[Entry]:
        codec = self._codec()
        return [codec.decode(text) for text in self.texts.get(run_id, ())]

    async def runs(self) -> list[str]:
        return list(self.texts)
