"""The inspector's ASGI app: runs, a run's timeline, the approval inbox and threads.

Server-rendered HTML (Jinja2, autoescaped everywhere) over a `Source`; one small
script keeps a run's timeline live by polling a fragment. Decisions resume runs in
this process with the configured `Agent`, as ``agent-kernel resume`` does.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import anyio
import anyio.abc
import jinja2
from attrs import define, field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_kernel import Agent, Approve, Deny
from agent_kernel.errors import AgentError, StaleAttempt, UnknownRequest

from . import _timeline
from ._source import RUN_STATUSES, PendingRequest, RawEntry, Source

__all__ = ["LOOPBACK_HOSTS", "create_app"]

_log = logging.getLogger("agent_plugin_inspector")

#: Host names that only this machine can reach.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
PAGE_STEPS = 50  # steps per timeline page
LIVE_ENTRIES = 2000  # at most this many entries per live fragment
LIVE_CONTEXT = 200  # entries read before the new ones (for the names of the calls they answer)
INBOX_SIZE = 100  # requests shown in the inbox (the most recently suspended runs first)
_CSRF_COOKIE = "inspector_csrf"
_TOKEN_COOKIE = "inspector_session"
_FINAL = ("completed", "stopped")


# ---------------------------------------------------------------------- decisions


@define
class Decision:
    """What became of one decision taken in this server."""

    state: str  # "resuming", "applied", "already decided", "failed"
    detail: str = ""
    outcome: str = ""


@define
class Decider:
    """Applies decisions: each request at most once per server, resumes in a background task.

    The journal's claim/fencing makes a concurrent resume from another process stale
    (`StaleAttempt`), and the kernel ignores a decision it already applied; this class
    also refuses a second decision for a request while the first is in flight, so two
    clicks at once resume the run once.
    """

    agent: Agent | None
    source: Source
    wait: float = 3.0
    results: dict[str, Decision] = field(factory=dict)
    _inflight: set[str] = field(factory=set)
    _tg: anyio.abc.TaskGroup | None = None

    async def decide(self, run_id: str, request_id: str, decision: Approve | Deny) -> Decision:
        if self.agent is None or self._tg is None:
            return Decision("failed", "this server has no agent to resume runs with (start it with --agent or -c)")
        if request_id in self._inflight or self.results.get(request_id, Decision("")).state in ("resuming", "applied"):
            return Decision("already decided", "another decision for this request was taken first")
        self._inflight.add(request_id)  # no await between the check and this line: one wins
        try:
            run = await self.source.run(run_id)
            pending = {p.id for p in await self.source.pending(run_id=run_id)}
        except BaseException:
            self._inflight.discard(request_id)
            raise
        if request_id not in pending:
            self._inflight.discard(request_id)
            return Decision("already decided", "the request is no longer pending (decided elsewhere, or unknown)")
        if run is None or run.status != "suspended":  # never fence out a worker that is running it
            self._inflight.discard(request_id)
            status = run.status if run is not None else "unknown"
            return Decision("already decided", f"the run is {status}, not waiting for a decision")
        result = self.results[request_id] = Decision("resuming")
        done = anyio.Event()
        self._tg.start_soon(self._resume, run_id, request_id, decision, result, done)
        with anyio.move_on_after(self.wait):
            await done.wait()
        return result

    async def _resume(
        self, run_id: str, request_id: str, decision: Approve | Deny, result: Decision, done: anyio.Event
    ) -> None:
        assert self.agent is not None
        try:
            outcome = await self.agent.resume(run_id, decisions={request_id: decision})
            result.state, result.outcome = "applied", outcome.reason
            result.detail = f"the run resumed and ended {outcome.reason}"
        except (StaleAttempt, UnknownRequest) as exc:
            result.state, result.detail = "already decided", str(exc)
        except AgentError as exc:
            result.state, result.detail = "failed", f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug somewhere: keep serving, say what happened
            _log.exception("resuming run %s failed", run_id)
            result.state, result.detail = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            self._inflight.discard(request_id)
            done.set()


# ---------------------------------------------------------------------- security


def _session_value(token: str) -> str:
    return hmac.new(token.encode(), b"agent-kernel inspector session", hashlib.sha256).hexdigest()


class Guard:
    """ASGI middleware: Host check on loopback, token check, security headers.

    * Bound to loopback without a token: only requests whose ``Host`` is a loopback
      name are served (a DNS-rebinding page cannot reach the server).
    * With a token: every request must carry it, as ``Authorization: Bearer TOKEN``, or
      the session cookie that ``?token=TOKEN`` sets (the token is compared in constant time).
    """

    def __init__(self, app: ASGIApp, *, token: str | None, loopback_only: bool) -> None:
        self.app = app
        self.token = token
        self.session = _session_value(token) if token else None
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.loopback_only and self.token is None:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
            if name not in LOOPBACK_HOSTS:
                await _plain(403, "inspector: this server only answers to loopback host names")(scope, receive, send)
                return
        if self.token is not None and not self._authorised(scope, headers):
            query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
            offered = (query.get("token") or [""])[0]
            if offered and hmac.compare_digest(offered.encode(), self.token.encode()):
                rest = {k: v for k, v in query.items() if k != "token"}
                target = scope.get("root_path", "") + scope["path"]
                if rest:
                    target += "?" + urllib.parse.urlencode(rest, doseq=True)
                response = RedirectResponse(target, status_code=303)
                response.set_cookie(_TOKEN_COOKIE, self.session or "", httponly=True, samesite="strict")
                await response(scope, receive, send)
                return
            await _plain(401, "inspector: a token is required (open the page with ?token=... once)")(
                scope, receive, send
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    # not no-referrer: with it browsers send `Origin: null` on form POSTs
                    (b"referrer-policy", b"same-origin"),
                    (
                        b"content-security-policy",
                        b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                        b"img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                    ),
                    (b"cache-control", b"no-store"),
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _authorised(self, scope: Scope, headers: Mapping[str, str]) -> bool:
        assert self.token is not None and self.session is not None
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and hmac.compare_digest(auth[7:].strip().encode(), self.token.encode()):
            return True
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == _TOKEN_COOKIE and hmac.compare_digest(value.encode(), self.session.encode()):
                return True
        return False


def _plain(status: int, text: str) -> Response:
    return PlainTextResponse(text, status_code=status, headers={"cache-control": "no-store"})


def _same_origin(request: Request) -> str | None:
    """Why a state-changing request looks cross-site, or None when it is fine."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {site})"
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "")
        if origin == "null" or urllib.parse.urlsplit(origin).netloc != host:
            return "cross-site request refused (Origin does not match Host)"
    return None


# ---------------------------------------------------------------------- rendering helpers


def _when(ts: float) -> str:
    if not ts:
        return ""
    moment = datetime.datetime.fromtimestamp(ts, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _tojson_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _query(**params: Any) -> str:
    return urllib.parse.urlencode({k: v for k, v in params.items() if v not in (None, "")})


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("agent_plugin_inspector", "templates"),
        autoescape=True,  # every template, every value: a tool result with <script> shows as text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, duration=_duration, tojson_text=_tojson_text)
    env.globals["query"] = _query
    return env


def _static(name: str) -> str:
    return resources.files("agent_plugin_inspector").joinpath("static", name).read_text("utf-8")


# ---------------------------------------------------------------------- the app


class Inspector:
    """The request handlers, over one `Source` and (optionally) one `Agent`."""

    def __init__(
        self,
        source: Source,
        agent: Agent | None,
        *,
        page_size: int = 50,
        steps_per_page: int = PAGE_STEPS,
        decision_wait: float = 3.0,
    ) -> None:
        self.source = source
        self.agent = agent
        self.page_size = page_size
        self.steps_per_page = max(1, steps_per_page)
        self.env = _environment()
        self.decider = Decider(agent, source, decision_wait)
        redactors = getattr(agent, "redactors", None) if agent is not None else None
        self.redactors: tuple[Callable[[Any], Any], ...] = tuple(redactors or ())
        self.css = _static("inspector.css")
        self.js = _static("inspector.js")

    # -- plumbing

    async def render(self, request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
        csrf = request.cookies.get(_CSRF_COOKIE) or ""
        fresh = len(csrf) != 43
        if fresh:
            csrf = secrets.token_urlsafe(32)
        counts = context.pop("all_counts", None)
        try:  # the badge counts suspended runs: one GROUP BY, not a scan of their entries
            counts = counts if counts is not None else await self.source.status_counts()
            inbox_count = counts.get("suspended", 0)
        except AgentError:
            inbox_count = 0
        flash = context.pop("flash", None)
        if flash is None and request.query_params.get("decided"):
            found = self.decider.results.get(request.query_params["decided"])
            if found is not None:
                flash = (
                    f"Decision for {request.query_params['decided']}: {found.state}"
                    + (f" — {found.detail}" if found.detail else "")
                    + (" (the run is resuming; this page updates as it goes)" if found.state == "resuming" else "")
                )
                context.setdefault("flash_tone", "bad" if found.state == "failed" else "ok")
        html = self.env.get_template(template).render(
            prefix=request.scope.get("root_path", ""),
            csrf=csrf,
            inbox_count=inbox_count,
            source_label=self.source.label,
            can_decide=self.agent is not None,
            flash=flash,
            flash_tone=context.pop("flash_tone", ""),
            section=context.pop("section", ""),
            **context,
        )
        response = HTMLResponse(html, status_code=status_code)
        if fresh:
            response.set_cookie(_CSRF_COOKIE, csrf, httponly=True, samesite="strict")
        return response

    async def message(
        self, request: Request, status_code: int, heading: str, text: str, link: str = "", link_text: str = ""
    ) -> HTMLResponse:
        return await self.render(
            request,
            "message.html",
            status_code=status_code,
            heading=heading,
            text=text,
            link=link,
            link_text=link_text or link,
        )

    async def check_post(self, request: Request) -> tuple[dict[str, str], Response | None]:
        """The form of a state-changing request, or the response refusing it."""
        why = _same_origin(request)
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        cookie = request.cookies.get(_CSRF_COOKIE, "")
        if why is None and not (cookie and hmac.compare_digest(fields.get("csrf", "").encode(), cookie.encode())):
            why = "the form's CSRF token does not match this browser's (reload the page and try again)"
        if why is not None:
            return fields, await self.message(request, 403, "Refused", why)
        return fields, None

    def redact(self, entries: Sequence[RawEntry]) -> list[RawEntry]:
        """Pass entries through the agent's redactors (when it exposes them), as the journal would."""
        if not self.redactors or self.agent is None:
            return list(entries)
        codec = self.agent.codec
        out = []
        for entry in entries:
            try:
                value = codec.decode(json.dumps(entry.data))
                for redact in self.redactors:
                    value = redact(value)
                out.append(RawEntry(entry.seq, entry.attempt, entry.kind, json.loads(codec.encode(value))))
            except Exception:  # an entry this agent cannot decode is shown as stored
                out.append(entry)
        return out

    def redact_pending(self, pending: Sequence[PendingRequest]) -> list[PendingRequest]:
        if not self.redactors:
            return list(pending)
        out = []
        for p in pending:
            raw = RawEntry(
                0,
                0,
                "Waiting",
                {
                    "type": "Waiting",
                    "v": 1,
                    "step": p.step,
                    "call_id": p.call_id,
                    "requests": [
                        {
                            "id": p.id,
                            "call": {"id": p.call_id, "name": p.tool, "arguments": p.arguments},
                            "tool": p.tool,
                            "reason": p.reason,
                            "step": p.step,
                            "plugin": p.plugin,
                        }
                    ],
                },
            )
            (clean,) = self.redact([raw])
            request = clean.data["requests"][0]
            out.append(
                PendingRequest(
                    p.id,
                    p.run_id,
                    p.step,
                    p.call_id,
                    p.tool,
                    dict(request["call"]["arguments"]),
                    str(request["reason"]),
                    p.plugin,
                    p.since,
                )
            )
        return out

    # -- pages

    async def index(self, request: Request) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/runs", status_code=303)

    async def runs(self, request: Request) -> Response:
        q = request.query_params
        status = q.get("status") or None
        thread = q.get("thread") or None
        before_text = q.get("before") or ""
        before = int(before_text) if before_text.isdigit() else None
        page = await self.source.run_page(status=status, thread=thread, before=before, limit=self.page_size)
        counts = await self.source.status_counts(thread=thread)
        statuses = [s for s in RUN_STATUSES if s in counts or s != "new"]
        return await self.render(
            request,
            "runs.html",
            section="runs",
            all_counts=None if thread else counts,
            page=page,
            counts=counts,
            total_all=sum(counts.values()),
            statuses=statuses,
            status=status,
            thread=thread,
            before=before,
        )

    async def run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        run = await self.source.run(run_id)
        if run is None:
            return await self.message(
                request, 404, "No such run", f"The journal has no run {run_id!r}.", "/runs", "runs"
            )
        index = await self.source.step_index(run_id)
        n = index.steps
        size = self.steps_per_page
        pages = [(first, min(first + size - 1, n)) for first in range(1, n + 1, size)] or [(1, 1)]
        wanted = request.query_params.get("steps", "")
        latest = (max(1, n - size + 1), max(1, n))  # by default: the last steps, where a live run grows
        shown = latest
        first_text, _, last_text = wanted.partition("-")
        if first_text.isdigit() and last_text.isdigit():  # a page at most: never the whole of a long run
            first = max(1, int(first_text))
            shown = (first, min(max(first, int(last_text)), first + size - 1))
        lo, hi = index.seq_range(shown[0], shown[1])  # from entry 0 when step 1 is shown
        entries = self.redact(await self.source.entries(run_id, lo=lo, hi=hi))
        names: dict[str, str] = {}
        if lo > 0:  # names of calls asked for earlier in the step
            earlier = await self.source.entries(run_id, lo=max(0, lo - 50), hi=lo)
            _timeline.rows(self.redact(earlier), known_calls=names)
        rows = _timeline.rows(entries, known_calls=names)
        live = hi >= index.length and run.status not in _FINAL
        pending = self.redact_pending(await self.source.pending(run_id=run_id)) if run.status == "suspended" else []
        threads = await self.source.threads_of(run_id)
        return await self.render(
            request,
            "run.html",
            section="runs",
            run=run,
            rows=rows,
            pages=pages,
            latest=latest,
            shown=shown,
            live=live,
            last_seq=entries[-1].seq if entries else lo - 1,
            pending=pending,
            threads=threads,
        )

    async def run_fragment(self, request: Request) -> Response:
        """New timeline rows after entry ``after``, plus the summary, as JSON (for the live page)."""
        run_id = request.path_params["run_id"]
        after_text = request.query_params.get("after", "-1")
        after = int(after_text) if after_text.lstrip("-").isdigit() else -1
        run = await self.source.run(run_id)
        if run is None:
            return JSONResponse({"error": "no such run"}, status_code=404)
        rows_html, last = "", after
        if run.entries > after + 1:
            # read a little before `after` too, so tool calls asked for just before have names;
            # the cost of a poll does not grow with the length of the run
            lo = max(0, after + 1 - LIVE_CONTEXT)
            entries = self.redact(await self.source.entries(run_id, lo=lo, hi=after + 1 + LIVE_ENTRIES))
            rows = [r for r in _timeline.rows(entries) if r.seq > after]
            last = entries[-1].seq if entries else after
            macros = self.env.get_template("_macros.html").module
            rows_html = str(macros.rows(rows))  # type: ignore[attr-defined]
        macros = self.env.get_template("_macros.html").module
        summary = str(macros.summary(run))  # type: ignore[attr-defined]
        return JSONResponse({"rows": rows_html, "last": last, "status": run.status, "summary": summary})

    async def inbox(self, request: Request) -> Response:
        pending = self.redact_pending(await self.source.pending(limit=INBOX_SIZE))
        counts = await self.source.status_counts()
        return await self.render(
            request,
            "inbox.html",
            section="inbox",
            pending=pending,
            waiting_runs=counts.get("suspended", 0),
            all_counts=counts,
            inbox_size=INBOX_SIZE,
        )

    async def decide(self, request: Request) -> Response:
        fields, refused = await self.check_post(request)
        if refused is not None:
            return refused
        run_id, request_id = fields.get("run_id", ""), fields.get("request_id", "")
        action = fields.get("action", "")
        back = f"{request.scope.get('root_path', '')}/inbox"
        decision: Approve | Deny
        if action == "approve":
            decision = Approve()
        elif action == "edit":
            try:
                arguments = json.loads(fields.get("arguments", ""))
            except ValueError as exc:
                return await self.message(
                    request,
                    400,
                    "Invalid arguments",
                    f"The arguments are not valid JSON: {exc}",
                    back,
                    "back to the inbox",
                )
            if not isinstance(arguments, dict):
                return await self.message(
                    request,
                    400,
                    "Invalid arguments",
                    'The arguments must be a JSON object, e.g. {"path": "a.txt"}.',
                    back,
                    "back to the inbox",
                )
            decision = Approve(arguments=arguments)
        elif action == "deny":
            decision = Deny(fields.get("reason", "").strip() or "denied by the operator")
        else:
            return await self.message(
                request, 400, "Unknown action", f"Unknown action {action!r}.", back, "back to the inbox"
            )
        if not run_id or not request_id:
            return await self.message(
                request, 400, "Missing request", "The form names no run or request.", back, "back to the inbox"
            )
        result = await self.decider.decide(run_id, request_id, decision)
        if result.state == "already decided":
            return await self.message(
                request,
                409,
                "Already decided",
                f"Request {request_id} was already decided: {result.detail}.",
                back,
                "back to the inbox",
            )
        if result.state == "failed":
            return await self.message(
                request, 500 if self.agent else 503, "Decision failed", result.detail, back, "back to the inbox"
            )
        target = f"{request.scope.get('root_path', '')}/runs/{urllib.parse.quote(run_id, safe='')}?{_query(decided=request_id)}"
        return RedirectResponse(target, status_code=303)

    async def threads(self, request: Request) -> Response:
        archived = request.query_params.get("archived") == "1"
        threads = await self.source.threads(archived=archived)
        return await self.render(request, "threads.html", section="threads", threads=threads, archived=archived)

    async def thread(self, request: Request) -> Response:
        thread_id = request.path_params["thread_id"]
        thread = await self.source.thread(thread_id)
        if thread is None:
            return await self.message(
                request, 404, "No such thread", f"The journal has no thread {thread_id!r}.", "/threads", "threads"
            )
        runs = [r for r in [await self.source.run(run_id) for run_id in thread.run_ids] if r is not None]
        return await self.render(request, "thread.html", section="threads", thread=thread, runs=runs)

    async def fork(self, request: Request) -> Response:
        fields, refused = await self.check_post(request)
        if refused is not None:
            return refused
        prefix = request.scope.get("root_path", "")
        thread_id, run_id, step_text = fields.get("thread_id", ""), fields.get("run_id", ""), fields.get("step", "")
        back = f"{prefix}/threads/{urllib.parse.quote(thread_id, safe='')}"
        if self.agent is None:
            return await self.message(
                request, 503, "No agent", "Start the server with --agent or -c to fork threads.", back, "back"
            )
        if not step_text.isdigit():
            return await self.message(
                request, 400, "Invalid step", "The step must be a whole number >= 0.", back, "back"
            )
        try:
            from agent_plugin_memory import Threads

            fork = await Threads(self.agent.journal).fork(thread_id, at_run=run_id or None, at_step=int(step_text))  # type: ignore[arg-type]
        except (AgentError, ValueError, TypeError) as exc:
            return await self.message(request, 400, "Fork failed", str(exc), back, "back")
        return RedirectResponse(f"{prefix}/threads/{urllib.parse.quote(fork.id, safe='')}", status_code=303)

    async def css_file(self, request: Request) -> Response:
        return Response(self.css, media_type="text/css")

    async def js_file(self, request: Request) -> Response:
        return Response(self.js, media_type="text/javascript")


def create_app(
    source: Source,
    *,
    agent: Agent | None = None,
    token: str | None = None,
    loopback_only: bool = True,
    page_size: int = 50,
    steps_per_page: int = PAGE_STEPS,
    decision_wait: float = 3.0,
) -> Starlette:
    """The inspector as an ASGI app.

    Args:
        source: where runs are read (`SqliteSource` for a SQLite journal file).
        agent: the agent that resumes runs when a decision is taken (and forks threads);
            without one the app is read-only. Its journal must be the one `source` reads.
        token: when set, every request must carry it (see `Guard`).
        loopback_only: serve only requests addressed to a loopback host name (set it
            when the server is bound to loopback; with a token the token is the check).
        page_size: runs per page.
        steps_per_page: steps per page of a run's timeline (a long run opens at its
            last page; earlier steps are a link away).
        decision_wait: seconds a decision request waits for the resumed run to end
            before answering (the run goes on in the background either way).
    """
    inspector = Inspector(
        source, agent, page_size=page_size, steps_per_page=steps_per_page, decision_wait=decision_wait
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            inspector.decider._tg = tg
            try:
                yield
            finally:
                inspector.decider._tg = None
                tg.cancel_scope.cancel()  # runs being resumed end as cancelled, resumable
        await source.aclose()

    routes = [
        Route("/", inspector.index),
        Route("/runs", inspector.runs),
        Route("/runs/{run_id:path}", inspector.run),
        Route("/fragment/run/{run_id:path}", inspector.run_fragment),
        Route("/inbox", inspector.inbox),
        Route("/inbox/decide", inspector.decide, methods=["POST"]),
        Route("/threads", inspector.threads),
        Route("/threads/fork", inspector.fork, methods=["POST"]),
        Route("/threads/{thread_id:path}", inspector.thread),
        Route("/static/inspector.css", inspector.css_file),
        Route("/static/inspector.js", inspector.js_file),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.inspector = inspector
    app.add_middleware(Guard, token=token, loopback_only=loopback_only)
    return app
