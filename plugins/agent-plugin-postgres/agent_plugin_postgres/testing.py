"""A throwaway PostgreSQL server for tests: `postgres_server()`.

Usage::

    from agent_plugin_postgres.testing import postgres_server

    with postgres_server() as server:
        journal = PostgresJournal(server.dsn)
        ...
        server.restart()  # a fast shutdown and a start on the same port and data

The server runs from ``initdb`` + ``pg_ctl`` in a fresh temporary directory, on a
free loopback port (plus any extra `listen` addresses), with trust authentication,
and is stopped by its postmaster PID (then the directory is removed). As root
(``initdb`` refuses to run as root) the commands run as the ``postgres`` system
user through ``runuser``. `missing()` says what is missing to start one.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence

__all__ = ["PostgresServer", "find_binaries", "missing", "postgres_server"]

INSTALL_HINT = "install PostgreSQL's server binaries (Debian: apt-get install postgresql) to run these tests"


def find_binaries() -> str | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return os.path.dirname(os.path.realpath(found))
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(directory, "pg_ctl")) and os.path.exists(os.path.join(directory, "initdb")):
            return directory
    return None


def missing() -> str | None:
    """Why `postgres_server()` cannot start a server here (None when it can)."""
    if find_binaries() is None:
        return f"PostgreSQL's initdb and pg_ctl were not found: {INSTALL_HINT}"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return (
                "running as root needs a 'postgres' system user to run initdb as (Debian's postgresql package has one)"
            )
        if shutil.which("runuser") is None:
            return "running as root needs runuser (util-linux) to run initdb as the postgres user"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on `host` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A running throwaway server (see `postgres_server`)."""

    def __init__(
        self, directory: str, port: int, listen: Sequence[str], settings: dict[str, str], trust: Sequence[str] = ()
    ) -> None:
        self.directory = directory
        self.datadir = os.path.join(directory, "data")
        self.port = port
        self.listen = list(listen)
        self.host = self.listen[0]
        self.settings = settings
        self.trust = list(trust)
        self.pid = 0

    @property
    def dsn(self) -> str:
        """The connection URL (superuser ``postgres``, database ``postgres``, first listen address)."""
        return self.dsn_for(self.host)

    def dsn_for(self, host: str, database: str = "postgres") -> str:
        """The connection URL through `host` (one of the listen addresses)."""
        return f"postgresql://postgres@{host}:{self.port}/{database}?connect_timeout=5"

    def _command(self, *args: str) -> list[str]:
        binaries = find_binaries()
        assert binaries is not None, INSTALL_HINT
        command = [os.path.join(binaries, args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return command

    def init(self) -> None:
        os.makedirs(self.datadir)
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            for path in (self.directory, self.datadir):
                os.chown(path, user.pw_uid, user.pw_gid)
        subprocess.run(
            self._command("initdb", "-D", self.datadir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"),
            check=True,
            capture_output=True,
            timeout=120,
        )
        hba = os.path.join(self.datadir, "pg_hba.conf")
        extra = [f"host all all {network} trust\n" for network in self.trust]
        if extra:
            with open(hba, "a") as file:
                file.writelines(extra)

    def start(self) -> None:
        """Start the server (waits until it accepts connections)."""
        options = [f"-p {self.port}", f"-k {self.directory}", f"-c listen_addresses={','.join(self.listen)}"]
        options += [f"-c {key}={value}" for key, value in self.settings.items()]
        result = subprocess.run(
            self._command(
                "pg_ctl", "-D", self.datadir, "-l", os.path.join(self.directory, "log"), "-w", "-t", "120",
                "-o", " ".join(options), "start",
            ),
            capture_output=True,
            text=True,
            timeout=180,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start on port {self.port}: {result.stderr}\n{self.log()[-2000:]}")
        with open(os.path.join(self.datadir, "postmaster.pid")) as file:
            self.pid = int(file.readline())

    def log(self) -> str:
        """The server's log so far."""
        try:
            with open(os.path.join(self.directory, "log")) as file:
                return file.read()
        except OSError:
            return ""

    def stop(self, *, mode: str = "fast", timeout: float = 60.0) -> None:
        """Stop the server through its postmaster PID (``fast``: SIGINT, ``immediate``: SIGQUIT, ``kill``: SIGKILL)."""
        if not self.pid:
            return
        pid, self.pid = self.pid, 0
        sig = {"fast": signal.SIGINT, "immediate": signal.SIGQUIT, "kill": signal.SIGKILL}[mode]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        pidfile = os.path.join(self.datadir, "postmaster.pid")
        while _alive(pid) or (mode != "kill" and os.path.exists(pidfile)):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout
            time.sleep(0.02)
        if mode == "kill":
            # children (backends) notice the postmaster is gone and exit; the pid file stays
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pidfile)

    def restart(self, *, mode: str = "fast") -> None:
        """Stop (``fast`` by default) and start again on the same port and data."""
        self.stop(mode=mode)
        self.start()


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reaps it if it is our child
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@contextlib.contextmanager
def postgres_server(
    *,
    listen: Sequence[str] = ("127.0.0.1",),
    trust: Sequence[str] = (),
    port: int | None = None,
    settings: dict[str, str] | None = None,
) -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL server; stop it (by PID) and delete its files on exit.

    Args:
        listen: addresses to listen on (loopback first; others, e.g. the host side
            of a veth pair a test created).
        trust: extra client networks (CIDR, e.g. ``10.200.0.0/16``) trusted in ``pg_hba.conf``.
        port: the port (a free one when omitted).
        settings: extra server settings (``-c key=value``). By default ``fsync=off``
            (a test server's data need not survive a power loss; commits still
            survive a crash of the server process) and ``max_connections=200``.

    Raises:
        RuntimeError: `missing()` says why no server can start, or it failed to start.
    """
    reason = missing()
    if reason is not None:
        raise RuntimeError(reason)
    merged = {"fsync": "off", "max_connections": "200", "shared_buffers": "32MB"}
    merged.update(settings or {})
    directory = tempfile.mkdtemp(prefix="agent-kernel-pg-")
    server: PostgresServer | None = None
    try:
        for attempt in range(3):
            server = PostgresServer(directory, port or free_port(), listen, merged, trust)
            if attempt == 0:
                server.init()
            try:
                server.start()
                break
            except RuntimeError:
                if port is not None or attempt == 2:
                    raise
        assert server is not None
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)
