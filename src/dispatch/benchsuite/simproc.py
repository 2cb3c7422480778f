"""The SMSC simulator in its own process, so the code measured and the SMSC each get a core
(as in production: the SMSC is another machine). Used by the pool, e2e and api sections."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from types import TracebackType
from typing import IO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"simulator did not listen on port {port} within {timeout_s} s")


class SimulatorProcess:
    """``with SimulatorProcess(receipts=True) as sim: ... sim.port ...``

    ``python -m dispatch.simulator`` with per-submit records off (a long run would keep
    ~250 bytes per submit) and account ``dispatch``/``secret``."""

    system_id = "dispatch"
    password = "secret"

    def __init__(self, *, receipts: bool = True, start_timeout_s: float = 20.0) -> None:
        self.receipts = receipts
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> SimulatorProcess:
        self.port = free_port()
        argv = [sys.executable, "-m", "dispatch.simulator", "--port", str(self.port), "--no-log"]
        if not self.receipts:
            argv.append("--no-receipts")
        self._log = tempfile.TemporaryFile()  # its stderr: why it died, if it does
        self._proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self._log)
        try:
            wait_port(self.port, self.start_timeout_s)
        except BaseException:
            self.close()
            raise
        return self

    @property
    def pid(self) -> int | None:
        """The simulator process's id (its CPU is read from /proc), ``None`` before start."""
        return None if self._proc is None else self._proc.pid

    def failure(self) -> str | None:
        """``None`` while the simulator runs; else its exit status and the end of its stderr
        (a crashed simulator must show up in the results, not as a mysterious bind timeout)."""
        if self._proc is None or self._proc.poll() is None:
            return None
        tail = b""
        if self._log is not None:
            self._log.seek(0)
            tail = self._log.read()[-1500:]
        return (f"simulator exited with status {self._proc.returncode}: "
                + tail.decode("utf-8", "replace").strip())

    def close(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
