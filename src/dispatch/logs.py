"""Structured logs: one JSON object per line, with the event's fields (campaign, esme, ...).

Log calls pass their fields through ``extra={"fields": {...}}`` (or the ``log_event`` helper),
never by formatting them into the message, so a log pipeline can filter on them. Phone numbers
never reach a log: callers log a ctn_hash or a masked number, and ``redact_digits`` is applied
to every message as a last line of defence (any run of 10+ digits is masked to its last four).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO

_LONG_DIGITS = re.compile(r"\+?\d{10,}")


def redact_digits(text: str) -> str:
    """Mask every run of 10 or more digits (a phone number, maybe) to its last four."""
    return _LONG_DIGITS.sub(lambda m: "*" * (len(m.group()) - 4) + m.group()[-4:], text)


def _redacted(value: Any) -> Any:
    """``value`` with ``redact_digits`` applied to every string in it, however nested."""
    if isinstance(value, str):
        return redact_digits(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redacted(v) for v in value]
    return value


class JsonLineFormatter(logging.Formatter):
    """Formats a record as one JSON line: ts, level, logger, msg, and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact_digits(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                entry[key] = _redacted(value)
        if record.exc_info:
            entry["exc"] = redact_digits(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """Human-readable form for a terminal; the same redaction applies."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        extra = ""
        if isinstance(fields, dict) and fields:
            extra = " " + " ".join(f"{k}={v}" for k, v in fields.items())
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        text = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}{extra}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return redact_digits(text)


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Route the ``dispatch`` and ``control`` loggers to ``stream`` in the chosen format.

    The root logger gets the same handler at WARNING or above (``level`` if higher): the
    libraries' own warnings (the PostgreSQL pool's connection errors, Python warnings) come
    out as the same redacted lines instead of Python's bare last-resort text on stderr."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else TextFormatter())
    for name in ("dispatch", "control"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    global _on_stderr
    _on_stderr = (level, fmt) if stream is None else None


#: (level, fmt) of the last ``configure_logging`` to stderr: what a child process of the
#: engine (its store, ``dispatch.store.process``) configures to write the same lines there.
_on_stderr: tuple[str, str] | None = None


def stderr_settings() -> tuple[str, str] | None:
    return _on_stderr


def log_event(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    """``log_event(log, logging.INFO, "bind up", esme="mts", bind=2)``."""
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})
