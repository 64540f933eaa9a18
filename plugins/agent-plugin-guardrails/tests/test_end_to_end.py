"""End to end: secrets in tool arguments (as values *and* as mapping keys), tool results
and answers reach neither the SQLite journal (its file and its ``-wal`` file), nor the
events, nor the outcome."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agent_kernel import Agent, Outcome
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_plugin_guardrails import Guardrails
from agent_plugin_sqlite import SqliteJournal
from agent_plugin_tools import Toolbox

OPENAI = "sk-proj-" + "Zq8Xw2Vb7Nm4Lk9Jh3Gf6Dp1"
AWS = "AKIA" + "QWERTYUIOP234567"
BEARER = "bT0kEn" + "9x8y7z6w5v4u3t2s"
OTHER_OPENAI = "sk-ant-api03-" + "Kk2Jj3Hh4Gg5Ff6Dd7Ss8Aa9"
SECRETS = (OPENAI, AWS, BEARER, OTHER_OPENAI)

ARGUMENTS: dict[str, Any] = {
    "vars": {OPENAI: "x", AWS: "y", f"Bearer {BEARER}": "z", "plain": OTHER_OPENAI},
    "headers": [{"Authorization": f"Bearer {BEARER}"}],
    "note": "rotate keys",
}


def configure(vars: dict[str, str], headers: list[dict[str, str]], note: str) -> str:
    """Apply a configuration.

    Args:
        vars: variables to set.
        headers: headers to send.
        note: why.
    """
    return f"set {sorted(vars)} with {headers}; the old key was {AWS}"


def script() -> ScriptedModel:
    return ScriptedModel([tool_call("configure", **ARGUMENTS), text(f"Done; the key {OPENAI} is set.")])


async def run(tmp_path: Path, *guardrails: Any) -> tuple[Outcome, list[str], bytes, bytes, bytes]:
    """A streamed run on a SQLite journal: outcome, events (repr and JSON), the
    database and -wal bytes while the journal is open, then the database after closing."""
    path = tmp_path / "runs.db"
    journal = SqliteJournal(path)
    tools = Toolbox([configure], name="config-tools")
    agent = Agent(model="scripted", plugins=[script(), tools, journal, *guardrails], autoload=False)
    async with agent.stream("configure the service", run_id="r") as events:
        seen = [e async for e in events]
    outcome = events.outcome
    assert outcome is not None and outcome.reason == "completed", outcome
    texts = [repr(e) for e in seen] + [str(agent.converter.unstructure(e)) for e in seen]
    # While the journal is open, its entries are (at least) in the -wal file; the
    # control test shows the secrets are found in these bytes when nothing redacts them.
    database, wal_bytes = path.read_bytes(), _read(f"{path}-wal")
    await journal.aclose()
    return outcome, texts, database, wal_bytes, path.read_bytes() + _read(f"{path}-wal")


def _read(path: str) -> bytes:
    return Path(path).read_bytes() if os.path.exists(path) else b""


def _outcome_text(outcome: Outcome) -> str:
    return repr(outcome) + "".join(repr(m) for m in outcome.state.messages)


async def test_without_guardrails_the_secrets_do_reach_storage(tmp_path: Path) -> None:
    """The control: the checks below would see the secrets if they were stored."""
    outcome, texts, database, wal, _ = await run(tmp_path)
    stored = database + wal
    for secret in SECRETS:
        assert secret.encode() in stored
        assert any(secret in t for t in texts)
    assert OPENAI in _outcome_text(outcome)


async def test_secrets_in_keys_values_results_and_answers_are_stored_nowhere(tmp_path: Path) -> None:
    outcome, texts, database, wal, after = await run(tmp_path, Guardrails())
    for secret in SECRETS:
        needle = secret.encode()
        assert needle not in database, f"{secret} is in the database file"
        assert needle not in wal, f"{secret} is in the -wal file"
        assert needle not in after, f"{secret} is in the database after closing"
        assert not [t for t in texts if secret in t], f"{secret} is in an event"
        assert secret not in _outcome_text(outcome), f"{secret} is in the outcome"
    # what was stored instead: the markers, keys included
    assert b"[REDACTED:openai_key]" in database + wal and b"[REDACTED:aws_access_key]" in database + wal
    finished = [t for t in texts if t.startswith("InferenceFinished(") and "configure" in t]
    assert finished and "[REDACTED:openai_key]" in finished[0] and "[REDACTED:aws_access_key]" in finished[0]
    assert outcome.output == "Done; the key [REDACTED:openai_key] is set."
    [call] = [c for m in outcome.state.messages for c in m.tool_calls]
    assert dict(call.arguments["vars"]) == {
        "[REDACTED:openai_key]": "x",
        "[REDACTED:aws_access_key]": "y",
        "Bearer [REDACTED:bearer_token]": "z",
        "plain": "[REDACTED:openai_key]",
    }
    assert call.arguments["note"] == "rotate keys"
