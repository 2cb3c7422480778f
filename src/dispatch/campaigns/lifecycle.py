"""The campaign lifecycle: ONE transition table (PRODUCT.md, seeds/003) and the records every
transition leaves behind.

    New --approve--> Pending --start/build--> Building --built--> Sending --finish--> Done
    New --reject--> Cancelled
    Sending --pause/window_close--> Paused --resume/window_open--> Sending
    Building | Sending | Paused --fail--> Failed
    Pending | Sending | Paused --expire--> Expired
    Pending | Building | Sending | Paused --cancel--> Cancelled
    archive (New, Done, Cancelled, Failed, Expired) / restore: an ``archived`` flag, status kept

Decisions written down here:

* Building happens at *start*, not at approve: a Pending campaign waits for its start (an explicit
  Start when approved without auto-start, its start time when approved with auto-start) and only
  then parses its file. The diagram orders it Pending -> Building, and building late means the
  file on disk is the one sent; the engine may start building a few minutes early for big files.
* ``start`` is the user's action and ``build`` the engine's (auto-start); both Pending -> Building.
* A pause by hand (``pause``) is only undone by hand (``resume``); the window reopening
  (``window_open``) resumes only a window pause. ``pause`` on a window-paused campaign turns it
  into a hold by hand (Paused -> Paused). Who paused is kept in ``Campaign.paused_by``.
* Building -> Sending only; when the window is closed the engine pauses right after.
* An archived campaign refuses everything but ``restore``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from dispatch.campaigns.errors import InvalidTransition
from dispatch.campaigns.model import CampaignStatus, PausedBy

S = CampaignStatus


class Event(enum.StrEnum):
    # user actions (audited)
    APPROVE = "approve"
    REJECT = "reject"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    ARCHIVE = "archive"
    RESTORE = "restore"
    # engine events (state history only)
    BUILD = "build"
    BUILT = "built"
    WINDOW_CLOSE = "window_close"
    WINDOW_OPEN = "window_open"
    FINISH = "finish"
    FAIL = "fail"
    EXPIRE = "expire"


USER_EVENTS = frozenset({Event.APPROVE, Event.REJECT, Event.START, Event.PAUSE, Event.RESUME,
                         Event.CANCEL, Event.ARCHIVE, Event.RESTORE})

_ACTIVE = (S.PENDING, S.BUILDING, S.SENDING, S.PAUSED)
_ARCHIVABLE = (S.NEW, S.DONE, S.CANCELLED, S.FAILED, S.EXPIRED)

#: (event, from status) -> to status. Archive/restore keep the status and flip the flag.
TRANSITIONS: dict[tuple[Event, CampaignStatus], CampaignStatus] = {
    (Event.APPROVE, S.NEW): S.PENDING,
    (Event.REJECT, S.NEW): S.CANCELLED,
    (Event.START, S.PENDING): S.BUILDING,
    (Event.BUILD, S.PENDING): S.BUILDING,
    (Event.BUILT, S.BUILDING): S.SENDING,
    (Event.PAUSE, S.SENDING): S.PAUSED,
    (Event.PAUSE, S.PAUSED): S.PAUSED,
    (Event.WINDOW_CLOSE, S.SENDING): S.PAUSED,
    (Event.RESUME, S.PAUSED): S.SENDING,
    (Event.WINDOW_OPEN, S.PAUSED): S.SENDING,
    (Event.FINISH, S.SENDING): S.DONE,
    **{(Event.FAIL, s): S.FAILED for s in (S.BUILDING, S.SENDING, S.PAUSED)},
    **{(Event.EXPIRE, s): S.EXPIRED for s in (S.PENDING, S.SENDING, S.PAUSED)},
    **{(Event.CANCEL, s): S.CANCELLED for s in _ACTIVE},
    **{(Event.ARCHIVE, s): s for s in _ARCHIVABLE},
    **{(Event.RESTORE, s): s for s in _ARCHIVABLE},
}


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of applying an event: what the store must write."""

    event: Event
    from_status: CampaignStatus
    to_status: CampaignStatus
    from_archived: bool
    to_archived: bool
    paused_by: PausedBy | None


@dataclass(frozen=True, slots=True)
class StateChange:
    """One state-history row: the phase entered, why, when."""

    phase: CampaignStatus
    event: str
    reason: str
    at: datetime
    from_status: CampaignStatus | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit-trail row: who did what, with the moderator's note."""

    actor: str
    action: str
    note: str
    at: datetime


def allowed_events(status: CampaignStatus, archived: bool) -> list[Event]:
    """Events accepted now (the UI shows these as buttons)."""
    if archived:
        return [Event.RESTORE] if (Event.RESTORE, status) in TRANSITIONS else []
    return [e for (e, s) in TRANSITIONS if s is status and e is not Event.RESTORE]


def apply(event: Event, status: CampaignStatus, archived: bool,
          paused_by: PausedBy | None) -> Transition:
    """Check ``event`` against the table and return the transition; raise ``InvalidTransition``
    naming the current status when the table (or a guard) refuses it."""
    to = TRANSITIONS.get((event, status))
    if to is None or archived != (event is Event.RESTORE):
        raise InvalidTransition(event.value, status.value, archived)
    if event is Event.WINDOW_OPEN and paused_by is PausedBy.USER:
        # A hold by hand outlives window changes.
        raise InvalidTransition(event.value, f"{status.value} by hand", archived)
    new_paused_by: PausedBy | None = None
    if to is S.PAUSED:
        new_paused_by = PausedBy.WINDOW if event is Event.WINDOW_CLOSE else PausedBy.USER
    to_archived = {Event.ARCHIVE: True, Event.RESTORE: False}.get(event, archived)
    return Transition(event, status, to, archived, to_archived, new_paused_by)
