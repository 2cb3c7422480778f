"""How a bind fails: it never came up (``BindError``, for the pool to report and back off
on) or its bound connection ended (``LinkDown``, internal to the bind's tasks)."""

from __future__ import annotations


class BindError(Exception):
    """The bind could not be established. ``command_status``: the SMSC's refusal, if any."""

    def __init__(self, reason: str, command_status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command_status = command_status


class LinkDown(Exception):
    """Internal: the bound connection ended (reason in args[0]); a task of the bind raises it
    and ``Bind._guard`` records the reason in ``down_reason``."""
