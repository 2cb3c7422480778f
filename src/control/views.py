"""How engine records look on the wire: plain dicts with the API's camelCase names.

Field names match the ones ``dispatch.campaigns.model.validate`` uses in ``validationErrors``
(``startAt``, ``tpsCap``, ``validityPeriod``, ``window.timeZone``), so an error points at the
field the client sent. Enum fields are the model's StrEnums themselves: ``str`` instances,
which JSON, msgpack and csv write as their value (a ``.value`` lookup costs ~0.5 us a field on
the engine's loop: half of rendering a page of 50 campaigns). Numbers: a recipient's clear number is included only when the caller's
key has the clear-number right (``clear=True``); otherwise the masked form and the ctn_hash.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from dispatch.campaigns.lifecycle import AuditEntry, StateChange
from dispatch.campaigns.model import Campaign, DailyWindow
from dispatch.store.base import Counters, DayActivity, JobErrorView, Kpi, RecipientView


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def wall_time(t: time) -> str:
    """``HH:MM``, or ``HH:MM:SS`` when the window edge is not on a whole minute (the engine
    opens it at that second, so the API says so)."""
    return t.isoformat("minutes" if not t.second and not t.microsecond else "auto")


def window_json(window: DailyWindow | None) -> dict[str, str] | None:
    if window is None:
        return None
    return {"start": wall_time(window.start), "end": wall_time(window.end),
            "timeZone": window.tz}


def progress_json(c: Counters) -> dict[str, int]:
    return {"total": c.total, "sent": c.sent, "errors": c.errors, "delivered": c.delivered,
            "failed": c.failed, "undelivered": c.undelivered, "pending": c.pending,
            "inflight": c.inflight, "unknown": c.unknown, "ambiguous": c.ambiguous,
            "jobErrors": c.job_errors, "held": c.held}


def campaign_json(c: Campaign, counters: Counters | None = None,
                  held_up: dict[str, Any] | None = None) -> dict[str, Any]:
    """``held_up``: what holds the campaign up, from ``control.storefault`` (``heldUp``:
    ``null`` when nothing does)."""
    out: dict[str, Any] = {
        "id": str(c.external_id), "name": c.name, "sender": c.sender, "text": c.text,
        "author": c.author, "esme": c.esme, "mode": c.mode, "kind": c.kind,
        "dataCoding": c.data_coding, "status": c.status, "archived": c.archived,
        "pausedBy": c.paused_by,
        "startAt": iso(c.start_at), "endAt": iso(c.end_at), "createdAt": iso(c.created_at),
        "window": window_json(c.window), "autoStart": c.auto_start, "priority": c.priority,
        "tpsCap": c.tps_cap, "validityPeriod": c.validity_period_s,
        "registeredDelivery": c.registered_delivery,
        "hasRecipientFile": c.source_path is not None, "heldUp": held_up,
    }
    if counters is not None:
        out["progress"] = progress_json(counters)
    return out


def kpi_json(k: Kpi) -> dict[str, int]:
    return {"total": k.total, "active": k.active, "completed": k.completed, "errors": k.errors,
            "smsSent": k.sms_sent, "smsDelivered": k.sms_delivered}


def state_change_json(s: StateChange) -> dict[str, Any]:
    return {"phase": s.phase, "event": s.event, "reason": s.reason, "at": iso(s.at),
            "fromStatus": s.from_status}


def audit_json(a: AuditEntry) -> dict[str, Any]:
    return {"actor": a.actor, "action": a.action, "note": a.note, "at": iso(a.at)}


def day_json(d: DayActivity) -> dict[str, Any]:
    return {"day": d.day, "sent": d.sent, "delivered": d.delivered, "failed": d.failed}


def recipient_json(r: RecipientView, clear: bool, campaign_id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r.id, "lineNo": r.line_no, "ctnHash": r.ctn_hash.hex(), "masked": r.masked,
        "number": r.number if clear else None, "stage": r.stage, "esme": r.esme,
        "submitStatus": r.submit_status, "smsId": list(r.message_ids),
        "createdAt": iso(r.created_at), "sentAt": iso(r.sent_at), "doneAt": iso(r.done_at),
        "smsResult": r.sms_result, "stat": r.receipt_stat,
        "err": r.receipt_err, "error": r.error, "attempts": r.attempts, "segments": r.segments,
        "ambiguous": r.ambiguous,
    }
    if campaign_id is not None:
        out["campaignId"] = campaign_id
    return out


def job_error_json(e: JobErrorView) -> dict[str, Any]:
    # occurrences: how many errors the row stands for (> 1 only for the summary row of a
    # campaign's retry exhaustions past the ones listed one by one)
    return {"id": e.id, "lineNo": e.line_no, "reason": e.reason, "message": e.message,
            "at": iso(e.at), "occurrences": e.occurrences}
