"""A throwaway PostgreSQL server for tests and benches: ``initdb`` + ``pg_ctl`` into a private
temporary directory, listening on a unix socket only (no TCP port to collide with), durability
switched off (``fsync=off``, ``synchronous_commit=off``, ``full_page_writes=off``: the data is
thrown away at the end, and the tests assert semantics, not crash safety of PostgreSQL itself).

PostgreSQL refuses to run as root (``initdb``: "cannot be run as root"). When we are root the
server runs as an unprivileged account (``postgres`` if the package created it, else
``nobody``) through ``subprocess``'s ``user=``/``group=`` (no ``su``/``runuser`` needed), and
the directory is created with ``mkdtemp`` directly under the system temp dir and chowned to
that account (pytest's ``tmp_path`` lives in a 0700 directory the account could not enter).
As root we can still connect: the socket's file permissions do not stop root, and ``trust``
authentication accepts the superuser name we gave ``initdb``. As a normal user everything runs
as that user.

The binaries come from ``DISPATCH_PG_BIN`` or the first of ``/usr/lib/postgresql/*/bin``
(Debian's layout; ``apt-get install postgresql-15`` provides them) or ``PATH``.

    with PgCluster.start_new() as pg:
        dsn = pg.create_database("t1")

Run as a script it starts a server and prints its DSN until Ctrl-C (for manual benches).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

SUPERUSER = "dispatch"
PORT = 5432  # only names the socket file (.s.PGSQL.5432) in our private directory
_START_TIMEOUT_S = 60


def find_bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` live, or None when PostgreSQL is not installed."""
    env = os.environ.get("DISPATCH_PG_BIN")
    if env:
        return Path(env) if (Path(env) / "initdb").exists() else None
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit()
                        else 0, reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _server_account() -> tuple[int, int] | None:
    """(uid, gid) to run the server as, or None to run as ourselves (not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return pw.pw_uid, pw.pw_gid
    raise RuntimeError("running as root and no unprivileged account (postgres, nobody) exists")


class PgCluster:
    """One private PostgreSQL server; ``stop()`` (or leaving the ``with``) deletes it."""

    def __init__(self, bin_dir: Path, base_dir: Path, account: tuple[int, int] | None) -> None:
        self.bin_dir = bin_dir
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.socket_dir = base_dir / "sock"
        self.log_path = base_dir / "server.log"
        self._account = account
        self._running = False
        self._db_seq = 0
        self._databases: set[str] = set()

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def start_new(cls, bin_dir: Path | None = None,
                  settings: dict[str, str] | None = None) -> PgCluster:
        found = bin_dir or find_bin_dir()
        if found is None:
            raise FileNotFoundError("PostgreSQL binaries not found (apt-get install "
                                    "postgresql-15, or set DISPATCH_PG_BIN)")
        account = _server_account()
        base = Path(tempfile.mkdtemp(prefix="dispatch-pg-", dir=tempfile.gettempdir()))
        cluster = cls(found, base, account)
        try:
            cluster._init_and_start(settings or {})
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _run(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        extra: dict[str, Any] = {}
        if self._account is not None:
            extra = {"user": self._account[0], "group": self._account[1], "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
        env.pop("PGDATA", None)
        return subprocess.run([str(self.bin_dir / args[0]), *args[1:]], check=True,
                              capture_output=True, text=True, env=env, cwd=self.base_dir,
                              **extra, **kw)

    def _init_and_start(self, settings: dict[str, str]) -> None:
        self.socket_dir.mkdir()
        if self._account is not None:
            for path in (self.base_dir, self.socket_dir):
                os.chown(path, *self._account)
        try:
            self._run("initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
                      "--encoding=UTF8", "--locale=C", "--no-sync")
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"initdb failed: {exc.stderr.strip()}") from exc
        options = {
            "listen_addresses": "''", "unix_socket_directories": f"'{self.socket_dir}'",
            "port": str(PORT), "fsync": "off", "synchronous_commit": "off",
            "full_page_writes": "off", "max_connections": "200", "shared_buffers": "128MB",
            "max_wal_size": "1GB", "log_min_messages": "warning",
            "deadlock_timeout": "200ms",
        }
        options.update(settings)
        with open(self.data_dir / "postgresql.conf", "a") as conf:  # owned by the account,
            conf.write("\n# dispatch test cluster\n")                 # but we may be root
            conf.writelines(f"{k} = {v}\n" for k, v in options.items())
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-w",
                      "-t", str(_START_TIMEOUT_S), "start", timeout=_START_TIMEOUT_S + 10)
        except subprocess.CalledProcessError as exc:
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {exc.stderr.strip()}\n{log[-2000:]}"
                               ) from exc
        self._running = True

    def stop(self) -> None:
        """Stop the server (immediate: nothing to keep) and delete its directory."""
        if self._running:
            with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w",
                          "stop", timeout=60)
            self._running = False
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ databases

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq URI for one database on this server (unix socket, superuser)."""
        return f"postgresql://{SUPERUSER}@/{dbname}?host={self.socket_dir}&port={PORT}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its DSN."""
        import psycopg

        if name is None:
            self._db_seq += 1
            name = f"t{os.getpid()}_{self._db_seq}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def create_schema(self, dbname: str = "tests") -> str:
        """A new empty schema in ``dbname`` (created on first use); returns a DSN whose
        ``search_path`` is that schema. Much cheaper than a database per test (CREATE
        DATABASE checkpoints), and as isolated for a store: every name it uses is unqualified."""
        import psycopg

        if dbname not in self._databases:
            with psycopg.connect(self.dsn(), autocommit=True) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                      (dbname,)).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{dbname}"')
            self._databases.add(dbname)
        self._db_seq += 1
        schema = f"s{os.getpid()}_{self._db_seq}"
        with psycopg.connect(self.dsn(dbname), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        return f"{self.dsn(dbname)}&options=-csearch_path%3D{schema}"

    def drop_database(self, name_or_dsn: str) -> None:
        import psycopg

        name = name_or_dsn.rsplit("/", 1)[-1].split("?", 1)[0]
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:  # pragma: no cover - manual helper
    with PgCluster.start_new() as pg:
        print(pg.create_database("dispatch"), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
