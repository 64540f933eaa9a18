"""The inspector in a real browser: Debian's Chromium, headless, through Playwright.

Each test starts the server on a free loopback port (uvicorn in a thread) over a
journal file it fills with scripted runs, and stops it at the end.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
from typing import Any

import anyio
from inspector_kit import CALLS, Background, Server, make_agent, open_gate, run_now, wait_for

from agent_kernel import Approve
from agent_plugin_inspector import SqliteSource, create_app


def _app(db: pathlib.Path, **options: Any) -> Any:
    return create_app(SqliteSource(db), agent=make_agent(db), **options)


def _entries(db: pathlib.Path, run_id: str, kind: str) -> list[dict[str, Any]]:
    """The run's entries of one kind, read-only ([] while the journal file is not created yet)."""
    if not db.exists():
        return []
    conn = sqlite3.connect(db.absolute().as_uri() + "?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT data FROM entries WHERE run_id = ? AND kind = ? ORDER BY seq", (run_id, kind))
        return [json.loads(row[0]) for row in rows]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()


def test_run_list_filters_by_status_and_thread_and_pages(db: pathlib.Path, page: Any, shots: pathlib.Path) -> None:
    run_now(db, "echo hello", "done-1")
    run_now(db, "fail", "done-2")
    run_now(db, "deploy prod", "waiting-1")
    run_now(db, "echo again", "done-3")

    async def thread() -> None:
        agent = make_agent(db)
        journal = agent.journal
        await journal.create_thread("support chat", thread_id="t-1")  # type: ignore[attr-defined]
        for run_id in ("done-1", "done-3"):
            await journal.add_run("t-1", run_id)  # type: ignore[attr-defined]

    anyio.run(thread, backend="trio")
    with Server(_app(db, page_size=3)) as server:
        page.goto(f"{server.url}/runs")
        rows = page.locator("#runs tbody tr")
        assert rows.count() == 3  # a page of 3, newest first
        assert [rows.nth(i).get_attribute("data-run") for i in range(3)] == ["done-3", "waiting-1", "done-2"]
        page.locator("#older").click()
        page.wait_for_url("**before=*")
        assert page.locator("#runs tbody tr").get_attribute("data-run") == "done-1"

        page.goto(f"{server.url}/runs")
        page.select_option("#filter-status", "completed")
        page.click("#filter-apply")
        page.wait_for_url("**status=completed*")
        statuses = page.locator("#runs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.status)")
        assert statuses == ["completed", "completed", "completed"], statuses
        page.select_option("#filter-status", "suspended")
        page.click("#filter-apply")
        page.wait_for_url("**status=suspended*")
        assert page.locator("#runs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.run)") == ["waiting-1"]

        page.goto(f"{server.url}/runs")
        page.fill("#filter-thread", "t-1")
        page.click("#filter-apply")
        page.wait_for_url("**thread=t-1*")
        assert page.locator("#runs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.run)") == [
            "done-3",
            "done-1",
        ]
        page.goto(f"{server.url}/runs")
        page.screenshot(path=str(shots / "runs.png"), full_page=True)


def test_timeline_updates_live_while_the_run_goes_on(db: pathlib.Path, page: Any) -> None:
    agent = make_agent(db)
    running = Background(lambda: agent.run("gates 2 live", run_id="live-1"))
    source = SqliteSource(db)

    def started_gate_1() -> bool:
        return any(e.get("call_id") == "call_1_1" for e in _entries(db, "live-1", "Intended"))

    try:
        wait_for(started_gate_1, "the run to call gate 1")
        with Server(create_app(source, agent=None)) as server:
            page.goto(f"{server.url}/runs/live-1")
            assert page.locator("#run-status").inner_text() == "running"
            page.evaluate("window.__same_page = 'yes'")  # gone if the page were reloaded
            timeline = page.locator("#timeline")
            assert "runs gate" in timeline.inner_text()
            assert page.locator("#timeline li.tool_result").count() == 0

            open_gate("live/1")
            page.wait_for_selector("#timeline li.tool_result >> text=gate 1 passed")
            page.wait_for_selector("#timeline li.step >> text=Step 2")
            open_gate("live/2")
            page.wait_for_selector("#timeline li.outcome >> text=ended: completed", timeout=60_000)
            page.wait_for_selector("#run-status >> text=completed")
            assert page.evaluate("window.__same_page") == "yes"
            assert "all gates passed" in timeline.inner_text()
            seqs = page.locator("#timeline li").evaluate_all("rows => rows.map(r => Number(r.dataset.seq))")
            assert seqs == sorted(seqs), "every entry once, in journal order"
    finally:
        open_gate("live/1")
        open_gate("live/2")
        running.join()


def test_a_script_in_a_tool_result_shows_as_text(db: pathlib.Path, page: Any) -> None:
    payload = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold</b>'
    run_now(db, f"echo {payload}", "xss")
    run_now(db, "fail", "broken")
    with Server(_app(db)) as server:
        page.goto(f"{server.url}/runs/xss")
        result = page.locator("#timeline li.tool_result pre.body")
        assert result.inner_text() == payload
        assert page.evaluate("window.__pwned") is None
        assert page.locator("#timeline b").count() == 0
        assert page.locator("#timeline img").count() == 0
        assert page.locator("#timeline li.error").count() == 0

        page.goto(f"{server.url}/runs/broken")  # an error result is marked as one
        failed = page.locator("#timeline li.tool_result.error")
        assert failed.count() == 1
        assert "broken failed" in failed.inner_text() and "the tool broke" in failed.inner_text()


def test_approve_with_edited_arguments_and_deny_from_the_inbox(
    db: pathlib.Path, page: Any, shots: pathlib.Path
) -> None:
    run_now(db, "deploy prod", "ask-1")
    run_now(db, "deploy moon", "ask-2")
    with Server(_app(db)) as server:
        page.goto(f"{server.url}/inbox")
        requests = page.locator("#inbox .request")
        assert requests.count() == 2
        assert "deploy" in requests.first.inner_text()
        assert page.locator("#nav-inbox .badge").inner_text() == "2"
        page.screenshot(path=str(shots / "inbox.png"), full_page=True)

        one = page.locator(".request[data-request='ask-1/1/call_1_1']")
        one.locator("summary").click()
        one.locator("textarea").fill("not json")
        one.locator("button.approve-edit").click()
        page.wait_for_selector("#message-heading >> text=Invalid arguments")
        page.goto(f"{server.url}/inbox")

        one = page.locator(".request[data-request='ask-1/1/call_1_1']")
        one.locator("summary").click()
        one.locator("textarea").fill('{"target": "staging"}')
        one.locator("button.approve-edit").click()
        page.wait_for_url("**/runs/ask-1*")
        page.wait_for_selector("#timeline li.outcome >> text=ended: completed", timeout=60_000)
        assert "deployed staging" in page.locator("#timeline").inner_text()
        assert "approved ask-1/1/call_1_1" in page.locator("#timeline").inner_text()
        suspend = page.locator("#timeline li.patches", has_text="Suspend")
        assert "approval: Suspend" in suspend.inner_text()  # the patch, with the plugin that returned it
        page.screenshot(path=str(shots / "run.png"), full_page=True)

        page.goto(f"{server.url}/inbox")
        two = page.locator(".request[data-request='ask-2/1/call_1_1']")
        two.locator("input[name=reason]").fill("not to the <moon>")
        two.locator("button.deny").click()
        page.wait_for_url("**/runs/ask-2*")
        page.wait_for_selector("#timeline li.outcome >> text=ended: completed", timeout=60_000)
        text = page.locator("#timeline").inner_text()
        assert "Denied: not to the <moon>" in text
        assert "denied ask-2/1/call_1_1" in text

        page.goto(f"{server.url}/inbox")
        page.wait_for_selector("#inbox-empty")
    assert CALLS.get("deploy:staging") == 1
    assert "deploy:moon" not in CALLS and "deploy:prod" not in CALLS


def test_two_decisions_at_once_apply_once(db: pathlib.Path, page: Any) -> None:
    run_now(db, "deploy twice", "race")
    with Server(_app(db)) as server:
        page.goto(f"{server.url}/inbox")
        statuses = page.evaluate(
            """async () => {
                const form = document.querySelector(".request[data-request='race/1/call_1_1'] form");
                const post = () => {
                    const body = new FormData(form);
                    body.set("action", "approve");
                    // getAttribute: form.action is the button named "action"
                    return fetch(form.getAttribute("action"), {method: "POST", body}).then(r => r.status);
                };
                return Promise.all([post(), post()]);
            }"""
        )
        assert sorted(statuses) == [200, 409], statuses  # one resumed (then the run page), one "already decided"
        wait_for(lambda: _entries(db, "race", "Ended")[-1]["reason"] == "completed", "the run to complete")
        # a third decision, from a double click on the now stale page
        page.locator(".request[data-request='race/1/call_1_1'] button.approve").dblclick()
        page.wait_for_selector("#message-heading >> text=Already decided")
    assert len(_entries(db, "race", "Decided")) == 1
    assert CALLS.get("deploy:twice") == 1


def test_a_request_decided_elsewhere_shows_already_decided(db: pathlib.Path, page: Any) -> None:
    outcome = run_now(db, "deploy elsewhere", "elsewhere")
    with Server(_app(db)) as server:
        page.goto(f"{server.url}/inbox")
        button = page.locator(".request[data-request='elsewhere/1/call_1_1'] button.approve")

        async def decide_in_another_agent() -> None:
            await make_agent(db).resume("elsewhere", decisions={outcome.pending[0].id: Approve()})

        anyio.run(decide_in_another_agent, backend="trio")
        button.click()
        page.wait_for_selector("#message-heading >> text=Already decided")
    assert len(_entries(db, "elsewhere", "Decided")) == 1


def test_the_token_is_checked_on_every_request(db: pathlib.Path, page: Any) -> None:
    run_now(db, "echo secret", "tok")
    token = "correct-horse-battery-staple"
    with Server(_app(db, token=token, loopback_only=False)) as server:
        response = page.goto(f"{server.url}/runs")
        assert response is not None and response.status == 401
        response = page.goto(f"{server.url}/runs?token=wrong-token-value")
        assert response is not None and response.status == 401
        response = page.goto(f"{server.url}/runs?token={token}")
        assert response is not None and response.status == 200
        assert "token=" not in page.url  # the token leaves the address bar
        page.click("#runs a:text-is('tok')")
        page.wait_for_url("**/runs/tok")
        assert page.locator("#run-status").inner_text() == "completed"
        other = page.context.browser.new_context()
        try:
            response = other.new_page().goto(f"{server.url}/runs/tok")
            assert response is not None and response.status == 401  # another browser has no session
        finally:
            other.close()


def test_a_long_run_opens_by_step_ranges(db: pathlib.Path, page: Any) -> None:
    run_now(db, "steps 24", "long")  # 24 tool steps and the answer: 25 steps
    with Server(_app(db, steps_per_page=10)) as server:
        page.goto(f"{server.url}/runs/long")
        assert page.locator("nav.steps a").count() == 3  # steps 1-10, 11-20, 21-25; the latest 10 are shown
        assert page.locator("#latest-steps").inner_text() == "latest (16–25)"
        titles = "rows => rows.map(r => r.textContent)"
        assert page.locator("#timeline li.step .title").evaluate_all(titles) == [f"Step {n}" for n in range(16, 26)]
        assert "ended: completed" in page.locator("#timeline li").last.inner_text()
        page.click("nav.steps >> text=1–10")
        page.wait_for_url("**steps=1-10")
        assert page.locator("#timeline li.step .title").evaluate_all(titles) == [f"Step {n}" for n in range(1, 11)]
        assert "started" in page.locator("#timeline li").first.inner_text()
        assert "ended" not in page.locator("#timeline").inner_text()
