"""The campaign service: what the control API and the engine call. It owns the rules (the
lifecycle table, validation, limits, the pending-capacity guard) and leaves durable state to the
async store; it never touches sockets.

Campaigns are addressed by their external UUID (what API callers see) or by the store's integer
id (what the engine uses). User actions go to the state history and the audit trail; engine
events only to the state history. A transition is compare-and-set in the store: when another
writer changed the status first, the service re-reads and re-checks (a bounded number of times),
so a concurrent cancel and window-close never both win.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVar

import trio

from dispatch.campaigns.errors import (
    BadRequest,
    CapacityExceeded,
    Conflict,
    InvalidTransition,
    NotActive,
    NotFound,
    ValidationError,
)
from dispatch.campaigns.lifecycle import (
    USER_EVENTS,
    AuditEntry,
    Event,
    StateChange,
    allowed_events,
    apply,
)
from dispatch.campaigns.model import (
    Campaign,
    CampaignKind,
    CampaignMode,
    CampaignStatus,
    RecipientStage,
    SmsResult,
    validate,
)
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import (
    LIMIT_EXCEEDED_MESSAGE,
    MAX_PAGE_LIMIT,
    CampaignFilter,
    CampaignSort,
    Counters,
    DayActivity,
    JobErrorView,
    Kpi,
    Page,
    RecipientFilter,
    RecipientRow,
    RecipientView,
    TriggerRelease,
)

CampaignRef = uuid.UUID | int

#: Turns a raw phone number into (E.164 number, ctn_hash, masked); raises ValueError when invalid.
#: The engine wires the ingest module's normaliser and keyed hash here.
NumberPreparer = Callable[[str], tuple[str, bytes, str]]
R = TypeVar("R")

_TRANSITION_RETRIES = 3
#: Recipients one transactional or trigger request may carry (doc 001: "Maximum 200000
#: recipients allowed per request").
MAX_MESSAGES_PER_REQUEST = 200_000
#: Why a bulk campaign without a recipient file cannot be approved or started: it would reach
#: Building and fail there ("the campaign has no recipient file"), after the moderator's OK.
NO_RECIPIENT_FILE = "A recipient file must be uploaded first"
#: The actions that lead to building the recipient list (approve with auto-start leads there too).
_NEEDS_RECIPIENT_FILE = frozenset({Event.APPROVE, Event.START})
#: Numbers (or messages) in one request above which they are checked and prepared in a worker
#: thread: up to 200 000 a request are ~1 s of CPU, which on the engine's loop would stall every
#: bind and request.
OFF_LOOP_ITEMS = 2000


class Period(enum.StrEnum):
    """The list's period filter, on created time."""

    HOUR = "hour"
    DAY = "24h"
    WEEK = "7d"
    MONTH = "30d"
    ALL = "all"


_PERIOD_SPAN = {Period.HOUR: timedelta(hours=1), Period.DAY: timedelta(days=1),
                Period.WEEK: timedelta(days=7), Period.MONTH: timedelta(days=30)}


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """Limits of the service. ``max_pending_messages`` bounds New + Sending messages across
    active transactional campaigns (the seeds' pending-capacity guard); a refusal tells the
    caller to retry after ``capacity_retry_after_s``."""

    default_page_limit: int = 50
    max_page_limit: int = MAX_PAGE_LIMIT
    max_messages_per_request: int = MAX_MESSAGES_PER_REQUEST
    max_pending_messages: int = 1_000_000
    capacity_retry_after_s: int = 30


class TransactionalMessage(NamedTuple):
    phone_number: str
    variables: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CampaignQuery:
    period: Period = Period.ALL
    statuses: frozenset[CampaignStatus] = frozenset()
    modes: frozenset[CampaignMode] = frozenset()
    search: str | None = None
    archived: bool = False
    sort: CampaignSort = CampaignSort.CREATED
    descending: bool = True
    offset: int = 0
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class CampaignDetail:
    """Everything the detail page shows: progress is ``sent + failed`` (processed) of
    ``total``; errors are submit failures plus carrier failures."""

    campaign: Campaign
    counters: Counters
    daily_activity: list[DayActivity]
    state_history: list[StateChange]
    audit: list[AuditEntry]
    allowed_actions: list[str]

    @property
    def progress(self) -> float:
        total = self.counters.total
        return 1.0 if total == 0 else self.counters.processed / total


class CampaignService:
    def __init__(self, store: AsyncStore, config: ServiceConfig, clock: Callable[[], datetime],
                 prepare_number: NumberPreparer | None = None,
                 on_release: Callable[[Campaign], None] | None = None) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self._prepare_number = prepare_number
        # Called when recipients become New outside the builder (trigger events, transactional
        # messages): the engine wakes the campaign's route instead of waiting for its next tick.
        self._on_release = on_release

    # ------------------------------------------------------------------ reads

    def campaigns_generation(self) -> int:
        """Changes whenever a campaign is created or changes status (``AsyncStore``)."""
        return self._store.campaigns_generation

    async def get(self, ref: CampaignRef) -> Campaign:
        if isinstance(ref, int):
            campaign = await self._store.get_campaign(ref)
        else:
            campaign = await self._store.get_campaign_by_external_id(ref)
        if campaign is None:
            raise NotFound("Campaign not found")
        return campaign

    def _limit(self, limit: int | None) -> int:
        if limit is None:
            return self._config.default_page_limit
        if limit > self._config.max_page_limit:
            raise BadRequest(LIMIT_EXCEEDED_MESSAGE)
        if limit < 1:
            raise ValidationError({"limit": "The limit parameter must be at least 1"})
        return limit

    async def list_campaigns(self, query: CampaignQuery) -> Page[Campaign]:
        if query.offset < 0:
            raise ValidationError({"offset": "The offset parameter must not be negative"})
        span = _PERIOD_SPAN.get(query.period)
        flt = CampaignFilter(
            since=None if span is None else self._clock() - span, statuses=query.statuses,
            modes=query.modes, search=query.search or None, archived=query.archived,
            sort=query.sort, descending=query.descending, offset=query.offset,
            limit=self._limit(query.limit))
        return await self._store.list_campaigns(flt)

    async def progress_of(self, campaigns: Sequence[Campaign]) -> dict[int, Counters]:
        """The counters of each of ``campaigns`` by store id (a list page's progress column)."""
        return await self._store.counters_many([c.id for c in campaigns if c.id is not None])

    async def kpi(self) -> Kpi:
        return await self._store.kpi()

    async def detail(self, ref: CampaignRef) -> CampaignDetail:
        snap = await self._store.campaign_detail(ref)  # one store read for the whole page
        if snap is None:
            raise NotFound("Campaign not found")
        c = snap.campaign
        return CampaignDetail(
            c, snap.counters, snap.daily_activity, snap.state_history, snap.audit,
            [e.value for e in allowed_events(c.status, c.archived) if e in USER_EVENTS
             and not (e in _NEEDS_RECIPIENT_FILE and _lacks_recipient_file(c))]
            + (["trigger"] if _triggerable(c) else []))

    async def counters(self, ref: CampaignRef) -> Counters:
        return await self._store.counters(_id(await self.get(ref)))

    async def recipients(self, ref: CampaignRef, stages: frozenset[RecipientStage] = frozenset(),
                         sms_results: frozenset[SmsResult] = frozenset(),
                         stats: frozenset[str] = frozenset(), include_null_stat: bool = True,
                         after_id: int = 0, limit: int | None = None,
                         with_numbers: bool = False) -> Page[RecipientView]:
        flt = RecipientFilter(stages, sms_results, frozenset(s.upper() for s in stats),
                              include_null_stat, None, after_id, self._limit(limit),
                              with_numbers)
        return await self._store.list_recipients(_id(await self.get(ref)), flt)

    async def lookup(self, ctn_hash: bytes, ref: CampaignRef | None = None) -> list[RecipientView]:
        cid = None if ref is None else _id(await self.get(ref))
        return await self._store.find_by_ctn_hash(ctn_hash, cid)

    async def job_errors(self, ref: CampaignRef, offset: int = 0,
                         limit: int | None = None) -> Page[JobErrorView]:
        return await self._store.job_errors(_id(await self.get(ref)), max(0, offset),
                                            self._limit(limit))

    async def message_errors(self, ref: CampaignRef, after_id: int = 0,
                             limit: int | None = None,
                             with_numbers: bool = False) -> Page[RecipientView]:
        """Recipients whose delivery failed (sms_result failed), not stage Failed (003);
        ``with_numbers`` as for ``recipients`` (the caller's clear-number right)."""
        return await self.recipients(ref, sms_results=frozenset({SmsResult.FAILED}),
                                     after_id=after_id, limit=limit, with_numbers=with_numbers)

    # ------------------------------------------------------------------ create and user actions

    async def create(self, campaign: Campaign) -> Campaign:
        """Validate and store a new campaign in status New (waiting for moderation)."""
        validate(campaign)
        now = self._clock()
        fresh = replace(campaign, id=None, status=CampaignStatus.NEW, archived=False,
                        paused_by=None, created_at=now, sender=campaign.sender.strip())
        return await self._store.create_campaign(
            fresh, StateChange(CampaignStatus.NEW, "create", "created", now),
            AuditEntry(campaign.author, "create", "", now))

    async def approve(self, ref: CampaignRef, actor: str, auto_start: bool | None = None,
                      note: str = "") -> Campaign:
        """New -> Pending. With auto-start the engine starts it by its mode and schedule;
        without, it waits for an explicit ``start``. ``auto_start`` None keeps the value the
        campaign was created with."""
        return await self._transition(ref, Event.APPROVE, actor=actor, note=note,
                                      reason="approved", auto_start=auto_start)

    async def reject(self, ref: CampaignRef, actor: str, note: str) -> Campaign:
        if not note.strip():
            raise ValidationError({"note": "A note is required to reject a campaign"})
        return await self._transition(ref, Event.REJECT, actor=actor, note=note,
                                      reason="rejected by moderator")

    async def start(self, ref: CampaignRef, actor: str, note: str = "") -> Campaign:
        return await self._transition(ref, Event.START, actor=actor, note=note,
                                      reason="started by user")

    async def pause(self, ref: CampaignRef, actor: str, note: str = "") -> Campaign:
        return await self._transition(ref, Event.PAUSE, actor=actor, note=note,
                                      reason="paused by user")

    async def resume(self, ref: CampaignRef, actor: str, note: str = "") -> Campaign:
        return await self._transition(ref, Event.RESUME, actor=actor, note=note,
                                      reason="resumed by user")

    async def cancel(self, ref: CampaignRef, actor: str, note: str = "") -> Campaign:
        """-> Cancelled; the recipients still New or Held are marked Failed ("campaign
        cancelled") in the same store transaction (``Store.apply_transition``), as ``expire``
        marks them: nothing is left pending, and no claim starts after it."""
        return await self._transition(ref, Event.CANCEL, actor=actor, note=note,
                                      reason="cancelled by user")

    async def archive(self, ref: CampaignRef, actor: str, note: str = "") -> Campaign:
        return await self._transition(ref, Event.ARCHIVE, actor=actor, note=note,
                                      reason="archived")

    async def restore(self, ref: CampaignRef, actor: str, note: str = "") -> Campaign:
        return await self._transition(ref, Event.RESTORE, actor=actor, note=note,
                                      reason="restored")

    # ------------------------------------------------------------------ engine-driven events

    async def begin_build(self, ref: CampaignRef, reason: str = "start time reached") -> Campaign:
        return await self._transition(ref, Event.BUILD, reason=reason)

    async def mark_built(self, ref: CampaignRef, reason: str = "recipient list built") -> Campaign:
        return await self._transition(ref, Event.BUILT, reason=reason)

    async def window_closed(self, ref: CampaignRef,
                            reason: str = "outside the daily window") -> Campaign:
        return await self._transition(ref, Event.WINDOW_CLOSE, reason=reason)

    async def window_opened(self, ref: CampaignRef,
                            reason: str = "inside the daily window") -> Campaign:
        return await self._transition(ref, Event.WINDOW_OPEN, reason=reason)

    async def finish(self, ref: CampaignRef, reason: str = "all messages processed") -> Campaign:
        """-> Done; a Trigger campaign's recipients never triggered are marked Failed ("not
        triggered") in the same store transaction (``Store.apply_transition``)."""
        return await self._transition(ref, Event.FINISH, reason=reason)

    async def fail(self, ref: CampaignRef, reason: str) -> Campaign:
        return await self._transition(ref, Event.FAIL, reason=reason)

    async def expire(self, ref: CampaignRef, reason: str = "end time passed") -> Campaign:
        """-> Expired; the recipients still New are marked Failed ("campaign expired"), Held
        ones "not triggered", in the same store transaction (``Store.apply_transition``)."""
        return await self._transition(ref, Event.EXPIRE, reason=reason)

    async def _transition(self, ref: CampaignRef, event: Event, *, reason: str,
                          actor: str | None = None, note: str = "",
                          auto_start: bool | None = None) -> Campaign:
        for attempt in range(_TRANSITION_RETRIES):
            campaign = await self.get(ref)
            t = apply(event, campaign.status, campaign.archived, campaign.paused_by)
            if event in _NEEDS_RECIPIENT_FILE:
                _require_recipient_file(campaign)
            now = self._clock()
            change = StateChange(t.to_status, event.value, reason, now, t.from_status)
            audit = None if actor is None else AuditEntry(actor, event.value, note, now)
            try:
                return await self._store.apply_transition(_id(campaign), t, change, audit,
                                                          auto_start)
            except Conflict:
                if attempt == _TRANSITION_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ Trigger mode

    async def trigger(self, ref: CampaignRef, actor: str, phone_numbers: Sequence[str] = (),
                      count: int = 0, note: str = "") -> TriggerRelease:
        """A trigger event for a Trigger campaign: release the named recipients (by phone
        number, looked up by keyed hash) or, with ``count``, the next ``count`` recipients in
        file order, from Held to New; the engine's route sends them at once. Allowed while the
        campaign is Sending or Paused (released recipients then wait for the resume); a
        recipient is released at most once, so a repeated event sends nothing twice."""
        campaign = await self.get(ref)
        if campaign.mode is not CampaignMode.TRIGGER:
            raise BadRequest(f"Campaign mode is {campaign.mode.value}; only Trigger campaigns "
                             "accept trigger events")
        if not _triggerable(campaign):
            raise InvalidTransition("trigger", campaign.status.value, campaign.archived)
        if bool(phone_numbers) == (count > 0):
            raise ValidationError({"phoneNumbers": "Give either phoneNumbers or count"})
        limit = self._config.max_messages_per_request
        if len(phone_numbers) > limit or count > limit:
            raise BadRequest(f"Maximum {limit} recipients allowed per request")
        hashes = ([p[1] for p in await self._prepare_all(phone_numbers, "phoneNumbers[{}]")]
                  if phone_numbers else None)
        cid = _id(campaign)
        result = await self._store.release_held(
            cid, hashes, count, AuditEntry(actor, "trigger", note, self._clock()))
        if result.released and self._on_release is not None:
            self._on_release(campaign)
        return result

    # ------------------------------------------------------------------ transactional messages

    async def add_messages(self, ref: CampaignRef,
                           messages: Sequence[TransactionalMessage]) -> int:
        """Queue messages on an active transactional campaign; returns how many were added.

        Checks, in order: the campaign is transactional ("Cannot add messages to bulk
        campaign"), it is active (the error names its status), the request size (at most
        ``max_messages_per_request``), every number (field errors by index), and the
        pending-capacity guard. All or nothing: one bad number rejects the request.
        """
        campaign = await self.get(ref)
        if campaign.kind is CampaignKind.BULK:
            raise BadRequest("Cannot add messages to bulk campaign")
        if not campaign.status.is_active or campaign.archived:
            raise NotActive(campaign.status.value)
        limit = self._config.max_messages_per_request
        if len(messages) > limit:
            raise BadRequest(f"Maximum {limit} recipients allowed per request")
        if not messages:
            raise ValidationError({"messages": "At least one message is required"})
        rows = await off_loop_if(len(messages) > OFF_LOOP_ITEMS, self._message_rows, messages)
        pending = await self._store.pending_messages(CampaignKind.TRANSACTIONAL)
        if pending + len(rows) > self._config.max_pending_messages:
            raise CapacityExceeded(pending, len(rows), self._config.max_pending_messages,
                                   self._config.capacity_retry_after_s)
        added = await self._store.add_recipients(_id(campaign), rows, self._clock())
        if self._on_release is not None:
            self._on_release(campaign)
        await release_off_loop(rows)
        return added

    def _message_rows(self, messages: Sequence[TransactionalMessage]) -> list[RecipientRow]:
        prepared = self._prepare_sync([m.phone_number for m in messages],
                                      "messages[{}].phoneNumber")
        return [RecipientRow(number, ctn_hash, masked, m.variables, i + 1)
                for i, ((number, ctn_hash, masked), m) in enumerate(zip(prepared, messages,
                                                                       strict=True))]

    async def _prepare_all(self, numbers: Sequence[str],
                           field: str) -> list[tuple[str, bytes, str]]:
        return await off_loop_if(len(numbers) > OFF_LOOP_ITEMS, self._prepare_sync, numbers,
                                 field)

    def _prepare_sync(self, numbers: Sequence[str],
                      field: str) -> list[tuple[str, bytes, str]]:
        """Every number normalised and hashed, or one ValidationError naming each bad one
        (``field`` formatted with its index; at most 100 listed, enough to fix a request)."""
        if self._prepare_number is None:
            raise RuntimeError("CampaignService needs prepare_number for phone numbers")
        out: list[tuple[str, bytes, str]] = []
        errors: dict[str, str] = {}
        for i, number in enumerate(numbers):
            try:
                out.append(self._prepare_number(number))
            except ValueError:
                if len(errors) < 100:
                    errors[field.format(i)] = "Phone number must be 10-15 digits"
        if errors:
            raise ValidationError(errors, "Invalid phone number format")
        return out


async def off_loop_if(large: bool, fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)`` in a worker thread when ``large`` (the loop keeps running; the GIL is
    handed back to it every switch interval), else right here (no thread hop for the many
    small requests)."""
    if large:
        return await trio.to_thread.run_sync(fn, *args)
    return fn(*args)


def _require_recipient_file(c: Campaign) -> None:
    """A bulk campaign sends to its file's numbers: without one, refuse (400) what would start
    the build. Checked after the lifecycle table, so a wrong status is still the 409 that
    names it. Transactional campaigns get their messages through the API instead."""
    if _lacks_recipient_file(c):
        raise ValidationError(
            {"fileId": f"{NO_RECIPIENT_FILE} (POST /api/v1/uploads)"},
            f"{NO_RECIPIENT_FILE}: a bulk campaign sends to the numbers in its recipient "
            "file; upload one with POST /api/v1/uploads and create the campaign with its "
            "fileId")


#: Items freed per slice by ``release_off_loop`` (about a millisecond of deallocation).
_RELEASE_SLICE = 1000


async def release_off_loop(*items: list[Any]) -> None:
    """Empty large lists in a worker thread, a slice at a time. The last reference to 200 000
    messages going away frees them in one cascade of C calls (~0.1 s, no GIL hand-over inside
    it): at the end of a request handler that cascade would run on the loop. Slices let the
    thread hand the GIL over between them. Small lists are left to the garbage as usual."""
    if sum(len(x) for x in items) <= OFF_LOOP_ITEMS:
        return

    def release() -> None:
        for x in items:
            while x:
                del x[-_RELEASE_SLICE:]

    await trio.to_thread.run_sync(release)


def _lacks_recipient_file(c: Campaign) -> bool:
    return c.kind is CampaignKind.BULK and not c.source_path


def _triggerable(c: Campaign) -> bool:
    return (c.mode is CampaignMode.TRIGGER and not c.archived
            and c.status in (CampaignStatus.SENDING, CampaignStatus.PAUSED))


def _id(campaign: Campaign) -> int:
    if campaign.id is None:  # pragma: no cover - store records always carry their id
        raise NotFound("Campaign not found")
    return campaign.id
