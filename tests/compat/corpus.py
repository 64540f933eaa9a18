"""The compatibility corpus: journals written by each released version, kept forever.

``python tests/compat/corpus.py [NAME]`` writes ``tests/compat/v<version>/`` (or
``tests/compat/NAME/``) for the installed agent-kernel: the journals of the runs
below, as JSON lines (``<run>.jsonl``, the agent codec's text, one entry a line) and
as one SQLite file (``journal.sqlite3``), plus ``expected.json`` (what each run's
outcome was). ``tests/test_compat.py`` loads
every version's files with the current code. Released directories are never edited.
A journal format that changes between releases gets a corpus of its own when it
lands, named for the coming release (``v0.2.0.dev-format2``: format 2, before 0.2.0;
``v0.2.0.dev-format3``: format 3, where phases no plugin implements are quiet), kept
the same way: journals written by main between releases resume too.

The runs use every journal entry kind and every patch the kernel folds from a
journal, a plugin state key, parallel tools, an approval, a tool that suspends its
run (`ToolSuspended`) and a retried inference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import trio

import agent_kernel
from agent_kernel import (
    Agent,
    ApprovalRequest,
    Approve,
    Deny,
    Outcome,
    StateKey,
    ToolCall,
    ToolContext,
    hookimpl,
    patches,
)
from agent_kernel.errors import ToolSuspended
from agent_kernel.hookspecs import Retry
from agent_kernel.testing import CodecJournal, ScriptedModel, fault, text, tool_call
from agent_plugin_sqlite import SqliteJournal
from agent_plugin_tools import Toolbox

HERE = Path(__file__).parent
NOTES = StateKey("corpus.notes", tuple[str, ...], default=())
SEEN = StateKey("corpus.seen", int, default=0, merge="sum")


def lookup(key: str) -> str:
    """Read a value.

    Args:
        key: which value.
    """
    return f"value-of-{key}"


def charge(amount: int) -> str:
    """Charge the customer.

    Args:
        amount: euros.
    """
    return f"charged {amount} EUR"


def send_email(to: str) -> str:
    """Send an email.

    Args:
        to: recipient.
    """
    return f"sent to {to}"


def deploy(context: ToolContext) -> str:
    """Deploy the release, once somebody signed it off."""
    if not context.decisions:
        sign_off = ToolCall("sign-off", "deploy", {})
        request_id = f"{context.idempotency_key}/sign-off"
        raise ToolSuspended(
            [ApprovalRequest(request_id, sign_off, "deploy", "needs a sign-off", context.step, "corpus")]
        )
    return "deployed"


class CorpusPolicy:
    """Returns one of each patch at the phase where it is legal."""

    name = "corpus"

    @hookimpl
    def agent_register_runtime(self, runtime: Any) -> None:
        runtime.add_state_key(NOTES)
        runtime.add_state_key(SEEN)

    @hookimpl
    def agent_run_start(self, ctx: Any) -> list[patches.Patch]:
        return [patches.SetData(NOTES, ("started",))]

    @hookimpl
    def agent_before_inference(self, ctx: Any) -> list[patches.Patch]:
        found: list[patches.Patch] = [patches.InjectContext(f"step {ctx.step}")]
        if ctx.step == 1:
            found += [patches.ToolChoice("auto"), patches.ExcludeTools({"nothing"})]
        return found

    @hookimpl
    def agent_before_tool_execute(self, call: ToolCall) -> list[patches.Patch] | None:
        if call.name == "send_email":
            return [patches.Suspend("emails need a human")]
        if call.name == "charge":
            return [patches.RewriteArguments({"amount": 7})]
        if call.arguments.get("key") == "secret":
            return [patches.Block("secrets are not looked up")]
        if call.arguments.get("key") == "cached":
            return [patches.ProvideResult("value-from-cache")]
        return None

    @hookimpl
    def agent_after_tool_execute(self, call: ToolCall) -> list[patches.Patch]:
        return [patches.IncrementData(SEEN), patches.Remind(f"{call.name} ran")]

    @hookimpl
    def agent_step_end(self, ctx: Any) -> list[patches.Patch] | None:
        if ctx.state.data.get(NOTES.name, ()) == ("started",):
            return [patches.SetData(NOTES, ("started", "first step")), patches.SetWindow(0)]
        return None

    @hookimpl
    def agent_on_inference_error(self, attempt: int) -> Retry | None:
        return Retry(0) if attempt < 2 else None


def scripts() -> dict[str, list[Any]]:
    return {
        "completed": [
            fault("overloaded", retryable=True),
            [tool_call("lookup", key="a"), tool_call("lookup", key="secret"), tool_call("charge", amount=5)],
            [tool_call("send_email", to="ops@example.com"), tool_call("lookup", key="cached")],
            text("Done: looked up a, charged 7 EUR, emailed ops."),
        ],
        "suspended": [[tool_call("send_email", to="ceo@example.com"), tool_call("send_email", to="cfo@example.com")]],
        "denied": [[tool_call("send_email", to="all@example.com")], text("I did not send it.")],
        "waited": [[tool_call("deploy"), tool_call("lookup", key="b")], text("Deployed.")],
    }


def agent(model: ScriptedModel, journal: object) -> Agent:
    class UseJournal:
        name = "journal"

        @hookimpl
        def agent_register_runtime(self, runtime: Any) -> None:
            runtime.set_journal(journal)

    return Agent(
        model="scripted",
        plugins=[
            model,
            Toolbox([lookup, charge, send_email, deploy], parallel=True),
            CorpusPolicy(),
            UseJournal(),
        ],
        autoload=False,
        instructions="You are the corpus agent.",
    )


def summary(outcome: Outcome) -> dict[str, Any]:
    """What must stay the same when a later version reads the journal."""
    state = outcome.state
    return {
        "reason": outcome.reason,
        "output": outcome.output,
        "pending": [[r.id, r.tool, dict(r.call.arguments), r.reason, r.step, r.plugin] for r in outcome.pending],
        "messages": [
            [m.role, m.content, m.tool_call_id, m.is_error, [c.name for c in m.tool_calls]] for m in state.messages
        ],
        "data": {name: list(v) if isinstance(v, tuple) else v for name, v in sorted(state.data.items())},
        "usage": [state.usage.input_tokens, state.usage.output_tokens],
        "step": state.step,
    }


async def record(run_id: str, journal: object) -> Outcome:
    """Run `run_id`'s script to its recorded end against `journal`."""
    outcome = await agent(ScriptedModel(scripts()[run_id]), journal).run(f"corpus run {run_id}", run_id=run_id)
    if run_id in ("completed", "waited"):
        outcome = await agent(ScriptedModel(scripts()[run_id]), journal).resume(
            run_id, decisions={r.id: Approve() for r in outcome.pending}
        )
    if run_id == "denied":
        outcome = await agent(ScriptedModel(scripts()[run_id]), journal).resume(
            run_id, decisions={r.id: Deny("not today") for r in outcome.pending}
        )
    return outcome


async def write(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=False)
    codec_journal, sqlite_journal = CodecJournal(), SqliteJournal(str(directory / "journal.sqlite3"))
    expected = {}
    for run_id in scripts():
        outcome = await record(run_id, codec_journal)
        again = await record(run_id, sqlite_journal)
        assert summary(again) == summary(outcome), run_id
        expected[run_id] = summary(outcome)
        (directory / f"{run_id}.jsonl").write_text("\n".join(codec_journal.texts[run_id]) + "\n")
    await sqlite_journal.aclose()
    (directory / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    target = HERE / (sys.argv[1] if len(sys.argv) > 1 else f"v{agent_kernel.__version__}")
    if target.exists():
        sys.exit(f"{target} exists: a corpus is never rewritten")
    trio.run(write, target)
    print(f"wrote {target}")
