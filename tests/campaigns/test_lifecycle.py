"""The lifecycle table: every (event, status, archived) pair is either the documented transition
or refused with an error naming the current status."""

from __future__ import annotations

import pytest

from dispatch.campaigns.errors import InvalidTransition
from dispatch.campaigns.lifecycle import Event, allowed_events, apply
from dispatch.campaigns.model import CampaignStatus as S
from dispatch.campaigns.model import PausedBy

# Written out independently of the implementation's table (PRODUCT.md, seeds/003).
EXPECTED: dict[tuple[Event, S], S] = {
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
    (Event.FAIL, S.BUILDING): S.FAILED,
    (Event.FAIL, S.SENDING): S.FAILED,
    (Event.FAIL, S.PAUSED): S.FAILED,
    (Event.EXPIRE, S.PENDING): S.EXPIRED,
    (Event.EXPIRE, S.SENDING): S.EXPIRED,
    (Event.EXPIRE, S.PAUSED): S.EXPIRED,
    (Event.CANCEL, S.PENDING): S.CANCELLED,
    (Event.CANCEL, S.BUILDING): S.CANCELLED,
    (Event.CANCEL, S.SENDING): S.CANCELLED,
    (Event.CANCEL, S.PAUSED): S.CANCELLED,
}
ARCHIVABLE = {S.NEW, S.DONE, S.CANCELLED, S.FAILED, S.EXPIRED}

ALL_PAIRS = [(e, s, a) for e in Event for s in S for a in (False, True)]


def _allowed(event: Event, status: S, archived: bool) -> bool:
    if event is Event.RESTORE:
        return archived and status in ARCHIVABLE
    if archived:
        return False
    if event is Event.ARCHIVE:
        return status in ARCHIVABLE
    return (event, status) in EXPECTED


@pytest.mark.parametrize(("event", "status", "archived"),
                         [p for p in ALL_PAIRS if _allowed(*p)])
def test_allowed_transition(event: Event, status: S, archived: bool) -> None:
    t = apply(event, status, archived, PausedBy.WINDOW if status is S.PAUSED else None)
    if event in (Event.ARCHIVE, Event.RESTORE):
        assert t.to_status is status
        assert t.to_archived is (event is Event.ARCHIVE)
    else:
        assert t.to_status is EXPECTED[(event, status)]
        assert t.to_archived is False
    assert t.from_status is status


@pytest.mark.parametrize(("event", "status", "archived"),
                         [p for p in ALL_PAIRS if not _allowed(*p)])
def test_refused_transition_names_status(event: Event, status: S, archived: bool) -> None:
    with pytest.raises(InvalidTransition) as info:
        apply(event, status, archived, None)
    assert status.value in str(info.value)
    assert info.value.status == status.value
    assert event.value in str(info.value)


def test_paused_by_records_who_paused() -> None:
    assert apply(Event.WINDOW_CLOSE, S.SENDING, False, None).paused_by is PausedBy.WINDOW
    assert apply(Event.PAUSE, S.SENDING, False, None).paused_by is PausedBy.USER
    assert apply(Event.PAUSE, S.PAUSED, False, PausedBy.WINDOW).paused_by is PausedBy.USER
    assert apply(Event.RESUME, S.PAUSED, False, PausedBy.USER).paused_by is None


def test_window_open_does_not_resume_a_pause_by_hand() -> None:
    with pytest.raises(InvalidTransition, match="Paused by hand"):
        apply(Event.WINDOW_OPEN, S.PAUSED, False, PausedBy.USER)
    assert apply(Event.WINDOW_OPEN, S.PAUSED, False, PausedBy.WINDOW).to_status is S.SENDING


def test_allowed_events_match_table() -> None:
    for status in S:
        for archived in (False, True):
            expected = {e for e in Event if _allowed(e, status, archived)}
            assert set(allowed_events(status, archived)) == expected


def test_error_body_shape() -> None:
    err = InvalidTransition("approve", "Sending")
    assert err.to_body() == {"error": "Conflict",
                             "message": "Cannot approve a campaign in status Sending"}
