"""Chaos across hosts: worker processes as machines in network namespaces, killed, cut off, and a database restart.

Used by test_chaos.py (about 60 runs, bounded) and bench/postgres_chaos.py (300+ runs).

Each worker host is a network namespace made here (``ip netns add``) joined to the
host by a veth pair; PostgreSQL listens on the host side of every pair (and on
loopback). While runs are in flight the harness SIGKILLs random workers at random
instants and restarts them, cuts one host's link (``ip link set DEV down``) while it
holds runs and restores it once its runs were taken over, restarts PostgreSQL once,
and decides approvals (some twice). Then it checks, from the side-effect ledger and
the journal: runs lost, non-idempotent executions per call, recorded model turns
requested again, decisions applied twice, commits accepted from a fenced worker.
Without root (no namespaces) workers are plain loopback processes, and it says so.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import psycopg
from queue_testkit import check_ledger, make_agent, turns_recorded

from agent_kernel import Agent, Approve, Deny
from agent_kernel.errors import StaleAttempt
from agent_kernel.testing.crash import UseJournal
from agent_plugin_postgres import PostgresJournal
from agent_plugin_postgres.testing import postgres_server
from agent_plugin_procrastinate import RunQueue, Settled

HERE = Path(__file__).resolve().parent
AGENT = "queue_testkit:make_agent"


def namespaces_available() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    name = f"akprobe{os.getpid() % 100000}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode == 0
    if made:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    return made


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Host:
    """A simulated machine: a network namespace with a veth link to the database (or plain loopback)."""

    def __init__(self, index: int, tag: int, netns: bool) -> None:
        self.index = index
        self.netns = netns
        self.name = f"ak{tag}n{index}"
        self.dev = f"ak{tag}h{index}"  # the host side of the veth pair (<= 15 characters)
        self.net = f"10.{200 + tag % 50}.{index}"
        self.server_ip = f"{self.net}.1" if netns else "127.0.0.1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.mark = 0  # ledger lines this host had written when its worker last started
        self.starts = 0
        self.cut = False

    def create(self) -> None:
        if not self.netns:
            return
        ip("netns", "add", self.name)
        peer = f"ak{self.index}p{os.getpid() % 10000}"
        ip("link", "add", self.dev, "type", "veth", "peer", "name", peer, "netns", self.name)
        ip("addr", "add", f"{self.net}.1/30", "dev", self.dev)
        ip("link", "set", self.dev, "up")
        ip("-n", self.name, "addr", "add", f"{self.net}.2/30", "dev", peer)
        ip("-n", self.name, "link", "set", peer, "up")
        ip("-n", self.name, "link", "set", "lo", "up")

    def destroy(self) -> None:
        if self.netns:
            subprocess.run(["ip", "link", "delete", self.dev], capture_output=True)
            subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)

    def set_link(self, up: bool) -> None:
        ip("link", "set", self.dev, "up" if up else "down")
        self.cut = not up


class Chaos:
    def __init__(self, tmp: Path, *, runs: int, hosts: int, seed: int, log: Any = print, max_kills: int = 1000) -> None:
        self.tmp = tmp
        self.max_kills = max_kills
        self.runs = runs
        self.random = random.Random(seed)
        self.log = log
        self.netns = namespaces_available()
        tag = os.getpid() % 10000
        self.hosts = [Host(i, tag, self.netns) for i in range(hosts)]
        self.ledger = tmp / "ledger"
        self.events: Counter[str] = Counter()
        self.dsn = ""
        self.port = 0

    def worker_dsn(self, host: Host) -> str:
        return f"postgresql://postgres@{host.server_ip}:{self.port}/postgres?connect_timeout=3"

    def start_worker(self, host: Host) -> None:
        log = open(self.tmp / f"{host.name}-{host.starts}.log", "wb")  # noqa: SIM115 - closed below
        host.starts += 1
        command = [
            sys.executable, "-m", "agent_kernel", "worker", "--dsn", self.worker_dsn(host), "--agent", AGENT,
            "--concurrency", "4", "--stalled-after", "3", "--drain-timeout", "1", "--name", host.name,
        ]  # fmt: skip
        if host.netns:
            command = ["ip", "netns", "exec", host.name, *command]
        env = {
            **os.environ,
            "AGENT_LEDGER": str(self.ledger),
            "AGENT_HOST": host.name,
            "AGENT_TOOL_DELAY": "0.05",
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        }
        host.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        host.started = time.monotonic()
        host.mark = self.written(host)
        log.close()

    def kill(self, host: Host) -> None:
        if host.proc is not None and host.proc.poll() is None:
            host.proc.send_signal(signal.SIGKILL)
            host.proc.wait(timeout=60)

    def written(self, host: Host) -> int:
        """How many ledger lines `host` has written (its workers' side effects)."""
        suffix = f" {host.name}"
        return sum(1 for line in self.ledger_lines() if line.endswith(suffix))

    def ledger_lines(self) -> list[str]:
        return self.ledger.read_text().splitlines() if self.ledger.exists() else []

    async def run(self, deadline: float) -> dict[str, Any]:
        self.log(
            "chaos: worker hosts in network namespaces"
            if self.netns
            else "chaos: no network namespaces here (needs root and iproute2): workers are loopback processes"
        )
        try:
            for host in self.hosts:
                host.create()
            listen = ["127.0.0.1", *[h.server_ip for h in self.hosts if h.netns]]
            trust = [f"{h.net}.0/30" for h in self.hosts if h.netns]
            with postgres_server(listen=listen, trust=trust) as server:
                self.dsn, self.port = server.dsn, server.port
                return await self._drive(server, deadline)
        finally:
            for host in self.hosts:
                self.kill(host)
            for host in self.hosts:
                host.destroy()

    async def _drive(self, server: Any, deadline: float) -> dict[str, Any]:
        started = time.monotonic()
        for host in self.hosts:
            self.start_worker(host)
        ids: list[str] = []
        approvals: set[str] = set()
        async with RunQueue(self.dsn, agent=make_agent) as queue:
            # Two waves: the second is submitted once the link cut and the database restart
            # happened, so both always hit runs in flight, however fast the first wave goes.
            specs = []
            for i in range(self.runs):
                approve = self.random.random() < 0.35
                specs.append((f"c{i}", f"run=c{i} steps={self.random.randint(3, 6)} approve={int(approve)}"))
                if approve:
                    approvals.add(f"c{i}")
            first_wave, second_wave = specs[: self.runs // 2], specs[self.runs // 2 :]
            for run_id, text in first_wave:
                await queue.submit(text, run_id=run_id)
                ids.append(run_id)
            total = len(specs)
            done: set[str] = set()
            decided: set[str] = set()
            restarted_db = False
            cut: tuple[Host, dict[str, int], float] | None = None
            link_cut_done = False
            next_kill = time.monotonic() + self.random.uniform(3.0, 7.0)
            next_report = time.monotonic() + 10
            while (len(done) < total) and time.monotonic() < deadline:
                if second_wave and (restarted_db or len(done) == len(ids)):
                    for run_id, text in second_wave:
                        await queue.submit(text, run_id=run_id)
                        ids.append(run_id)
                    second_wave = []
                if time.monotonic() >= next_report:
                    next_report += 10
                    self.log(
                        f"chaos: {time.monotonic() - started:.0f} s, {len(done)}/{len(ids)} runs done (of {total}), {dict(self.events)}"
                    )
                # supervisor: a worker that exited (killed, or crashed on a lost connection) is started again
                for host in self.hosts:
                    if host.proc is not None and host.proc.poll() is not None:
                        self.events["worker restarts"] += 1
                        self.start_worker(host)
                progress = len(done) / total
                now = time.monotonic()
                # a worker that is at work (side effects since it started), killed at a random instant
                ripe = (
                    [h for h in self.hosts if not h.cut and h.proc is not None and self.written(h) > h.mark + 2]
                    if now >= next_kill and self.events["SIGKILLs"] < self.max_kills
                    else []
                )
                if ripe:
                    self.kill(self.random.choice(ripe))
                    self.events["SIGKILLs"] += 1
                    next_kill = now + self.random.uniform(4.0, 8.0)
                if self.netns and not link_cut_done and cut is None and (progress >= 0.1 or not second_wave):
                    cut = await self._cut_link(queue)
                if cut is not None:
                    host, held, when = cut
                    if await self._taken_over(queue, held) or time.monotonic() - when > 20:
                        host.set_link(True)
                        self.events["links restored"] += 1
                        self.log(f"chaos: link of {host.name} restored after {time.monotonic() - when:.1f} s")
                        cut, link_cut_done = None, True
                if not restarted_db and (link_cut_done or not self.netns) and progress >= 0.15:
                    await anyio.to_thread.run_sync(server.restart)
                    restarted_db = True
                    self.events["database restarts"] += 1
                    self.log("chaos: PostgreSQL restarted")
                for run_id in ids:
                    if run_id in done:
                        continue
                    found = await queue.outcome(run_id)
                    if isinstance(found, Settled) and found.reason == "suspended" and run_id not in decided:
                        decided.add(run_id)
                        decision = Deny("no") if self.random.random() < 0.2 else Approve()
                        decisions = {r.id: decision for r in found.pending}
                        await queue.decide(run_id, decisions)
                        if self.random.random() < 0.5:
                            await queue.decide(run_id, decisions)  # delivered twice
                            self.events["decisions delivered twice"] += 1
                    elif found is not None and not isinstance(found, Settled):
                        done.add(run_id)
                    elif isinstance(found, Settled) and found.reason == "error":
                        self.events["runs with an error outcome"] += 1
                await anyio.sleep(0.3)
            if cut is not None:
                cut[0].set_link(True)
            ids.extend(run_id for run_id, _ in second_wave)  # never submitted: counted as lost
        elapsed = time.monotonic() - started
        for host in self.hosts:
            self.kill(host)
        return await self._verdict(ids, done, elapsed)

    async def _cut_link(self, queue: RunQueue) -> tuple[Host, dict[str, int], float] | None:
        """Cut the link of a host that is working on runs right now; remember those runs' attempts."""
        recent = self.ledger_lines()[-60:]
        busy = Counter(line.split()[-1] for line in recent if line.startswith("llm"))
        candidates = [h for h in self.hosts if busy.get(h.name)]
        if not candidates:
            return None
        host = max(candidates, key=lambda h: busy[h.name])
        held_runs = {line.split()[1] for line in recent if line.startswith("llm") and line.split()[-1] == host.name}
        held: dict[str, int] = {}
        for run_id in held_runs:
            info = await queue.journal.run_info(run_id)
            if info is not None and info.status not in ("completed", "stopped", "suspended"):
                held[run_id] = info.attempt
        if not held:
            return None
        host.set_link(False)
        self.events["links cut"] += 1
        self.log(f"chaos: link of {host.name} cut while it held runs {sorted(held)}")
        return host, held, time.monotonic()

    async def _taken_over(self, queue: RunQueue, held: dict[str, int]) -> bool:
        for run_id, attempt in held.items():
            info = await queue.journal.run_info(run_id)
            if info is None or (info.attempt <= attempt and info.status not in ("completed", "stopped")):
                return False
        return True

    async def _verdict(self, ids: list[str], done: set[str], elapsed: float) -> dict[str, Any]:
        journal = PostgresJournal(self.dsn)
        Agent(model="scripted", plugins=[UseJournal(journal)], autoload=False)
        entries: dict[str, list[Any]] = {}
        recorded: dict[str, dict[int, int]] = {}
        fenced_commits = 0
        try:
            with psycopg.connect(self.dsn) as conn:
                for run_id in ids:
                    entries[run_id] = await journal.load(run_id)
                    rows = conn.execute(
                        "SELECT seq, attempt, kind FROM agent_kernel.entries WHERE run_id = %s ORDER BY seq", (run_id,)
                    ).fetchall()
                    recorded[run_id] = turns_recorded(rows, entries[run_id])
                    attempts = [row[1] for row in rows]
                    fenced_commits += sum(1 for a, b in itertools.pairwise(attempts) if b < a)
                    # a superseded attempt is refused now too
                    with contextlib.suppress(StaleAttempt):
                        if attempts and attempts[-1] > 1:
                            await journal.append(run_id, attempts[-1] - 1, [], at=len(rows))
                            fenced_commits += 1
        finally:
            await journal.aclose()
        facts = check_ledger(self.ledger_lines(), entries, recorded)
        fenced_seen = sum(p.read_text(errors="replace").count("fenced") for p in self.tmp.glob("*.log"))
        report = {
            "mode": "network namespaces" if self.netns else "loopback processes",
            "runs": len(ids),
            "runs lost": len(ids) - len(done),
            "non-idempotent executions repeated": facts["non_idempotent_repeated"],
            "recorded model turns requested again": facts["recorded_turns_requested_again"],
            "decisions applied twice": facts["decisions_applied_twice"],
            "commits accepted from a fenced worker": fenced_commits,
            "fenced attempts refused (worker logs)": fenced_seen,
            "seconds": round(elapsed, 1),
            **dict(self.events),
        }
        return report


def worker_logs(tmp: Path, tail: int = 2500) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}" for p in sorted(tmp.glob("*.log")))
