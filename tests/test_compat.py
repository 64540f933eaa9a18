"""Journals written by every released version load and resume in this one (tests/compat/)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import agent_kernel
from agent_kernel import Approve
from agent_kernel.journal import Started
from agent_kernel.testing import CodecJournal, ScriptedModel, text
from agent_plugin_sqlite import SqliteJournal

COMPAT = Path(__file__).parent / "compat"
_spec = importlib.util.spec_from_file_location("compat_corpus", COMPAT / "corpus.py")
assert _spec is not None and _spec.loader is not None
corpus: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)

VERSIONS = sorted(p for p in COMPAT.iterdir() if p.is_dir() and p.name.startswith("v"))
CASES = [(v, run_id) for v in VERSIONS for run_id in json.loads((v / "expected.json").read_text())]


def test_this_version_has_a_corpus() -> None:
    assert (COMPAT / f"v{agent_kernel.__version__}" / "expected.json").exists(), (
        f"no corpus for {agent_kernel.__version__}: run `python tests/compat/corpus.py` and commit it"
    )


async def codec_journal(version: Path, run_id: str) -> CodecJournal:
    """A journal holding the version's JSON-lines file of `run_id`, bound to a current agent's codec."""
    journal = CodecJournal()
    corpus.agent(ScriptedModel([]), journal)  # binds the codec (with the corpus plugin's state keys)
    journal.texts[run_id] = (version / f"{run_id}.jsonl").read_text().splitlines()
    entries = await journal.load(run_id)
    journal._attempts[run_id] = max(e.attempt for e in entries if isinstance(e, Started))
    return journal


async def sqlite_journal(version: Path, run_id: str, tmp_path: Path) -> SqliteJournal:
    copy = tmp_path / "journal.sqlite3"
    shutil.copy(version / "journal.sqlite3", copy)  # migrations may write: never touch the corpus
    return SqliteJournal(str(copy))


@pytest.mark.parametrize("store", ["jsonl", "sqlite"])
@pytest.mark.parametrize(("version", "run_id"), CASES, ids=[f"{v.name}-{r}" for v, r in CASES])
async def test_recorded_run_resumes_to_its_recorded_outcome(
    store: str, version: Path, run_id: str, tmp_path: Path
) -> None:
    expected = json.loads((version / "expected.json").read_text())[run_id]
    if store == "jsonl":
        journal: Any = await codec_journal(version, run_id)
    else:
        journal = await sqlite_journal(version, run_id, tmp_path)
    model = ScriptedModel([])
    outcome = await corpus.agent(model, journal).resume(run_id)
    assert corpus.summary(outcome) == expected
    assert model.requests == []
    if store == "sqlite":
        await journal.aclose()


@pytest.mark.parametrize("version", VERSIONS, ids=[v.name for v in VERSIONS])
async def test_recorded_approval_pause_can_still_be_approved(version: Path) -> None:
    journal = await codec_journal(version, "suspended")
    agent = corpus.agent(ScriptedModel([*corpus.scripts()["suspended"], text("Both sent.")]), journal)
    pending = (await agent.resume("suspended")).pending
    assert len(pending) == 2
    outcome = await agent.resume("suspended", decisions={r.id: Approve() for r in pending})
    assert outcome.reason == "completed" and outcome.output == "Both sent."
    assert [m.content.split("\n")[0] for m in outcome.state.messages if m.role == "tool"] == [
        "sent to ceo@example.com",
        "sent to cfo@example.com",
    ]
