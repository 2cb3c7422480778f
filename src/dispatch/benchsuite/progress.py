"""The progress display: one redrawn line on a terminal, plain lines otherwise.

Sections call ``update`` as often as they like (it is cheap and rate-limited); on a pipe or
a CI log only section starts/ends and an update every ``plain_interval_s`` are printed, so
logs stay readable.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None,
                 plain_interval_s: float = 5.0, redraw_interval_s: float = 0.1) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.plain_interval_s = plain_interval_s
        self.redraw_interval_s = redraw_interval_s
        self._section = ""
        self._index = 0
        self._total = 0
        self._section_started = 0.0
        self._last_write = 0.0

    def begin(self, section: str, index: int, total: int) -> None:
        self._section, self._index, self._total = section, index, total
        self._section_started = time.monotonic()
        self._line(f"{self._prefix()} starting", final=not self.live)

    def update(self, text: str) -> None:
        now = time.monotonic()
        interval = self.redraw_interval_s if self.live else self.plain_interval_s
        if now - self._last_write < interval:
            return
        elapsed = now - self._section_started
        self._line(f"{self._prefix()} {elapsed:5.1f}s {text}", final=not self.live)

    def end(self, status: str, summary: str = "") -> None:
        elapsed = time.monotonic() - self._section_started
        tail = f": {summary}" if summary else ""
        self._line(f"{self._prefix()} {status} in {elapsed:.1f}s{tail}", final=True)

    def message(self, text: str) -> None:
        """A line of its own (ends a live line first)."""
        self._line(text, final=True)

    def _prefix(self) -> str:
        return f"[{self._index}/{self._total}] {self._section}"

    def _line(self, text: str, *, final: bool) -> None:
        self._last_write = time.monotonic()
        if self.live:
            width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
            self.stream.write("\r\x1b[2K" + text[:width] + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
