"""The store interface every backend implements (SQLite now, PostgreSQL in issue 8), and the
plain records that cross it.

Semantics that every implementation must keep (the store test suite checks them):

* Dispatch path, batch-oriented, one transaction per call:
  ``claim_for_send`` moves up to ``limit`` recipients New -> Sending (attempts + 1) and commits
  *before* returning, so a recipient is durably marked in flight before its submit is written to a
  socket. That is what makes crash recovery exact: after a crash, only rows in Sending can have an
  unknown fate.
  ``record_submit_results`` applies the SMSC's answers: accepted -> stage Delivered (message ids
  per segment stored for receipt lookup), failed -> stage Failed, retry -> back to New (throttled,
  queue full, bind lost before the write), unknown -> stage Failed with ``ambiguous`` set and
  sms_result ``unknown`` (the submit may or may not have reached the SMSC: never resent, counted).
  Results for recipients not in Sending are ignored and counted as ``stale`` (idempotent replays).
  ``record_receipts`` matches receipts by (esme, normalised message id). A multipart recipient is
  ``delivered`` when every segment's receipt says delivered, ``failed`` as soon as one segment
  fails, ``unknown`` when all reported and some are unknown. A receipt whose id is not known yet
  (it raced the submit_sm_resp) is parked in ``unmatched_receipts`` and applied in the same
  transaction that later stores that message id.
  ``recover_inflight`` is called once at startup, before any claim; see ``RecoveryPolicy``.
  Only a Sending campaign's recipients are claimed: a claim racing a pause or a cancel leases
  nothing, on every node at once.
* A campaign that ends with recipients unsent (Expired, Cancelled, Failed, a Trigger campaign
  Done with recipients never triggered: ``marks_unsent``) has them marked stage Failed, with the
  error ``unsent_errors`` gives for its status. The transition that ends it marks the first
  ``StoreConfig.unsent_mark_rows`` of them (New first, then Held, lowest ids first) in its own
  transaction, so a campaign of that size or smaller never commits its end status with rows
  still New or Held. A bigger one keeps the rest until the engine marks them chunk by chunk
  (``campaigns_with_unsent``, then ``mark_unsent`` with a ``limit``), each chunk its own
  transaction, so other store calls interleave instead of waiting for millions of rows. No
  claim starts after the end either way (claims take only a Sending campaign's rows).
  A submit retry that comes back New afterwards is marked in its own transaction;
  ``mark_unsent`` marks again what was stored after the end (a build that raced a cancel), and
  ``recover_inflight`` starts the marking of what a crash (or older code) left unmarked.
* Counters (per campaign, per UTC day) change in the same transaction as the recipient rows they
  count, so reads are cheap and always equal to ``COUNT(*)`` over the rows.
* Campaign transitions are compare-and-set on (status, archived): the history row and the audit
  row are written in that transaction; a lost race raises ``Conflict``.

Times are timezone-aware datetimes at this boundary; backends keep UTC microseconds.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from dispatch.campaigns.lifecycle import AuditEntry, StateChange, Transition
from dispatch.campaigns.model import (
    Campaign,
    CampaignKind,
    CampaignMode,
    CampaignStatus,
    RecipientStage,
    SmsResult,
)

T = TypeVar("T")

MAX_PAGE_LIMIT = 200
LIMIT_EXCEEDED_MESSAGE = "The limit parameter exceeds the allowed maximum"


class RecoveryPolicy(enum.StrEnum):
    """What ``recover_inflight`` does with recipients a crash left in stage Sending.

    ``RESEND`` (at-least-once): they go back to New and are sent again. A submit that the SMSC
    had accepted but whose answer was not yet committed is then sent twice.
    ``MARK_UNKNOWN`` (at-most-once): they become stage Failed, sms_result unknown, ``ambiguous``;
    nothing is ever sent twice, some messages may never be sent. Both are counted.
    """

    RESEND = "resend"
    MARK_UNKNOWN = "mark_unknown"


class UnsentErrors(NamedTuple):
    """How the recipients a campaign ended without sending are marked (stage Failed)."""

    new: str  # the error of those still New
    held: str  # the error of those still Held (a Trigger campaign's, never triggered)
    expired: bool  # counted in ``Counters.expired`` too


_EXPIRED_UNSENT = UnsentErrors("campaign expired", "not triggered", True)
_UNSENT_BY_STATUS = {
    CampaignStatus.CANCELLED: UnsentErrors("campaign cancelled", "campaign cancelled", False),
    CampaignStatus.FAILED: UnsentErrors("campaign failed", "campaign failed", False),
}
#: The statuses whose campaigns never send again, so whatever they still hold New or Held is
#: marked (``marks_unsent``); as an SQL list for the stores' queries.
ENDED_UNSENT_STATUSES = (CampaignStatus.EXPIRED, CampaignStatus.CANCELLED, CampaignStatus.FAILED)
ENDED_UNSENT_SQL = "(" + ", ".join(f"'{s.value}'" for s in ENDED_UNSENT_STATUSES) + ")"


def marks_unsent(status: CampaignStatus, mode: CampaignMode) -> bool:
    """Whether a campaign entering ``status`` has its unsent recipients marked (starting in
    the transition's own transaction, up to ``StoreConfig.unsent_mark_rows``): Expired,
    Cancelled and Failed ones (a build that failed part-way left rows no claim will ever
    take), and a Trigger campaign Done at its end time (the recipients never triggered). The
    rule ``recover_inflight`` and ``campaigns_with_unsent`` check too."""
    return (status in ENDED_UNSENT_STATUSES
            or (status is CampaignStatus.DONE and mode is CampaignMode.TRIGGER))


def unsent_errors(status: CampaignStatus | str) -> UnsentErrors:
    """The marking of a campaign's unsent recipients by the status it ended in: Cancelled ones
    "campaign cancelled", Failed ones "campaign failed" (neither counted as expired);
    otherwise (Expired, a Trigger campaign Done at its end time) "campaign expired", Held ones
    "not triggered"."""
    return _UNSENT_BY_STATUS.get(CampaignStatus(status), _EXPIRED_UNSENT)


class SubmitKind(enum.StrEnum):
    ACCEPTED = "accepted"
    FAILED = "failed"
    RETRY = "retry"
    UNKNOWN = "unknown"


class RecipientRow(NamedTuple):
    """One parsed recipient from the ingest parser (or a transactional request)."""

    number: str
    ctn_hash: bytes
    masked: str
    variables: dict[str, Any] | None
    line_no: int


class JobError(NamedTuple):
    """A workflow/infrastructure error of a campaign: a file line that failed to parse, retry
    exhaustion, a build failure. ``line_no`` 0 when not about a line."""

    line_no: int
    reason: str
    message: str


class ClaimedRecipient(NamedTuple):
    """A recipient leased for sending; ``attempts`` already counts this attempt."""

    id: int
    number: str
    variables: dict[str, Any] | None
    attempts: int


class SubmitOutcome(NamedTuple):
    """The SMSC's answer for one claimed recipient. ``message_ids`` has one normalised id per
    segment (accepted only; at most 63 segments, the width of the per-recipient receipt mask,
    far above the 23 UCS-2 segments of the longest text the model accepts); ``submit_status``
    is the SMPP status name (e.g. ``ESME_ROK``, ``ESME_RTHROTTLED``). ``exhausted_after``
    (failed only) is the number of submit attempts after which the retries of a transient
    SMSC error ran out (0: not a retry exhaustion); such a failure is also recorded as a job
    error of the campaign (``RETRY_EXHAUSTED``, with the recipient's line number), in the
    transaction that applies it (seeds/003: job errors include retry exhaustion)."""

    recipient_id: int
    kind: SubmitKind
    esme: str
    message_ids: tuple[str, ...] = ()
    submit_status: str | None = None
    error: str | None = None
    exhausted_after: int = 0


#: The job-error reason of a recipient whose submit failed once its retries ran out. The
#: first ``StoreConfig.retry_exhausted_errors_listed`` of a campaign are listed one by one (with
#: the recipient's line number); the rest are counted in one summary row of this reason, line 0,
#: whose ``occurrences`` and message are kept current: an SMSC refusing everything gives one
#: row per campaign, not one per recipient, and the list's total stays true.
RETRY_EXHAUSTED = "retry_exhausted"


def retry_exhausted_message(outcome: SubmitOutcome) -> str:
    """The job-error text of a retry exhaustion (no phone number: the line number says who)."""
    return (f"submit failed after {outcome.exhausted_after} attempts: retries of "
            f"{outcome.submit_status or 'a transient error'} exhausted")


def retry_exhausted_summary(occurrences: int, listed: int) -> str:
    """The message of the summary row standing for the retry exhaustions not listed."""
    return (f"{occurrences} more submits failed after their retries ran out (the first "
            f"{listed} are listed one by one)")


class Receipt(NamedTuple):
    """A delivery receipt. ``sms_result`` ``None`` for intermediate states (ENROUTE, ACCEPTED):
    the stat is kept but the segment stays unresolved."""

    esme: str
    message_id: str
    stat: str | None
    err: str | None
    sms_result: SmsResult | None
    done_at: datetime | None = None


class SubmitTally(NamedTuple):
    accepted: int = 0
    failed: int = 0
    retried: int = 0
    unknown: int = 0
    stale: int = 0
    receipts_matched: int = 0


class TriggerRelease(NamedTuple):
    """What one trigger event did: ``released`` recipients moved Held -> New; of the numbers
    named, ``already_released`` were in the campaign but no longer Held (a trigger is
    idempotent per recipient) and ``not_found`` are not recipients of the campaign."""

    released: int
    already_released: int = 0
    not_found: int = 0

    def audited(self, audit: AuditEntry) -> AuditEntry:
        """The trigger's audit row, its note completed with this result."""
        note = (f"released {self.released}, already released {self.already_released}, "
                f"not in campaign {self.not_found}")
        return replace(audit, note=f"{audit.note}; {note}" if audit.note else note)


class RecoveryCounts(NamedTuple):
    resent: int
    marked_unknown: int
    by_campaign: dict[int, int]


@dataclass(frozen=True, slots=True)
class Counters:
    """Per-campaign counters, equal to COUNT(*) over its recipients at every commit.

    ``pending`` stage New, ``held`` stage Held (Trigger mode, waiting for a trigger), ``inflight`` stage Sending, ``sent`` stage Delivered (SMSC accepted),
    ``failed`` stage Failed (submit refused, expired, cancelled, or ambiguous), ``expired`` the
    part of ``failed`` marked when the campaign expired (``unsent_errors``), ``delivered``/``undelivered``/``unknown``
    sms_result, ``ambiguous`` submits of unknown fate, ``job_errors`` the campaign's job errors
    (a summary row counts each one it stands for: ``JobErrorView.occurrences``).
    """

    total: int = 0
    pending: int = 0
    inflight: int = 0
    sent: int = 0
    failed: int = 0
    expired: int = 0
    delivered: int = 0
    undelivered: int = 0
    unknown: int = 0
    ambiguous: int = 0
    job_errors: int = 0
    held: int = 0

    @property
    def errors(self) -> int:
        """What the UI shows as errors: submits refused plus carrier failures."""
        return self.failed + self.undelivered

    @property
    def processed(self) -> int:
        return self.sent + self.failed


COUNTER_FIELDS = ("total", "pending", "inflight", "sent", "failed", "expired", "delivered",
                  "undelivered", "unknown", "ambiguous", "job_errors", "held")


@dataclass(frozen=True, slots=True)
class DayActivity:
    day: str  # UTC date, ISO "YYYY-MM-DD"
    sent: int
    delivered: int
    failed: int


@dataclass(frozen=True, slots=True)
class Kpi:
    """Workspace tiles: all campaigns, active, completed (Done), errors (Failed), SMS sent
    (accepted by the SMSC) and SMS delivered (receipts), across all campaigns."""

    total: int
    active: int
    completed: int
    errors: int
    sms_sent: int
    sms_delivered: int


class CampaignSort(enum.StrEnum):
    SENDER = "sender"
    START = "start"
    CREATED = "created"


@dataclass(frozen=True, slots=True)
class CampaignFilter:
    """Campaign list query. ``since`` is the period's lower bound on created time (the service
    turns "last 24 h" into it); ``search`` matches an external-id prefix or a sender substring."""

    since: datetime | None = None
    statuses: frozenset[CampaignStatus] = frozenset()
    modes: frozenset[CampaignMode] = frozenset()
    kinds: frozenset[CampaignKind] = frozenset()
    search: str | None = None
    archived: bool = False
    sort: CampaignSort = CampaignSort.CREATED
    descending: bool = True
    offset: int = 0
    limit: int = 50


@dataclass(frozen=True, slots=True)
class RecipientFilter:
    """Recipient list query with keyset pagination on id (``after_id``).

    ``stats`` filters by receipt stat; ``include_null_stat`` adds recipients with no receipt yet
    (with no ``stats``, ``include_null_stat=False`` keeps only recipients that have one)."""

    stages: frozenset[RecipientStage] = frozenset()
    sms_results: frozenset[SmsResult] = frozenset()
    stats: frozenset[str] = frozenset()
    include_null_stat: bool = True
    ctn_hash: bytes | None = None
    after_id: int = 0
    limit: int = 50
    with_numbers: bool = False


@dataclass(frozen=True, slots=True)
class RecipientView:
    id: int
    campaign_id: int
    line_no: int
    ctn_hash: bytes
    masked: str
    number: str | None  # only when asked for (the clear-number right)
    stage: RecipientStage
    esme: str | None
    submit_status: str | None
    message_ids: tuple[str, ...]
    created_at: datetime
    sent_at: datetime | None
    done_at: datetime | None
    sms_result: SmsResult | None
    receipt_stat: str | None
    receipt_err: str | None
    error: str | None
    attempts: int
    segments: int
    ambiguous: bool


@dataclass(frozen=True, slots=True)
class JobErrorView:
    """One row of a campaign's job-error list. ``occurrences`` is how many errors it stands
    for: 1, except for a campaign's ``RETRY_EXHAUSTED`` summary row (line 0), whose ``at`` is
    its latest."""

    id: int
    line_no: int
    reason: str
    message: str
    at: datetime
    occurrences: int = 1


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """A page of ``items``; ``total`` matches the whole filter; ``next_after`` is the keyset
    cursor for the next page (``None`` on the last page) where keyset paging applies."""

    items: list[T]
    total: int
    next_after: int | None = None


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Store settings (a section of the engine config). ``path`` is the SQLite file;
    ``dsn`` selects PostgreSQL when set (issue 8)."""

    path: str = "var/dispatch.sqlite3"
    dsn: str | None = None
    busy_timeout_s: float = 5.0
    insert_batch_rows: int = 5000
    recovery_policy: RecoveryPolicy = RecoveryPolicy.MARK_UNKNOWN
    group_commit_rows: int = 2000
    # A commit batch closes when it has group_commit_rows, group_commit_interval_s after its
    # first item, or when no item came for group_commit_quiet_s (store/writer.py).
    group_commit_interval_s: float = 0.05
    group_commit_quiet_s: float = 0.005
    group_commit_queue_rows: int = 20000
    # SQLite page cache per connection (the engine has two: writer and reader). The hot pages
    # of the dispatch path are few (the claim front, recent rows, the message-id index tail);
    # the OS page cache holds the rest without counting in the engine's RSS.
    sqlite_cache_mib: int = 8
    # PostgreSQL only (issue 8): connections in the pool; this node's id in the cluster
    # ("" = host-pid-random, new at every start); a node silent for node_timeout_s is dead and
    # its in-flight recipients are taken over by the live ones.
    pool_max_size: int = 4
    node_id: str = ""
    heartbeat_interval_s: float = 2.0
    node_timeout_s: float = 10.0
    # A receipt that matched no submit is parked (its submit_sm_resp may still come) and
    # deleted once older than this (0: kept for ever). Longer than any validity period in use:
    # a receipt comes at the latest when the message expires at the SMSC.
    unmatched_receipt_retention_s: float = 7 * 86400.0
    # Retry-exhaustion job errors listed one by one per campaign; the rest are counted in one
    # summary row (``RETRY_EXHAUSTED``), so an SMSC refusing everything cannot write a job
    # error per recipient.
    retry_exhausted_errors_listed: int = 1000
    # The most unsent recipients (New, Held) one transaction marks Failed when a campaign ends
    # unsent (``marks_unsent``): the ending transition marks this many, the engine the rest
    # in chunks of this size, one transaction each. A cancel marking a whole 70 M-row
    # campaign in one transaction held the store for minutes (1 M rows: 3 s on SQLite), and
    # every other campaign's submit results and receipts waited behind it.
    unsent_mark_rows: int = 50_000
    # The engine's writing store in a process of its own, beside the engine's event loop
    # instead of in a thread sharing its GIL (dispatch.store.process); false: in a thread.
    # Unset: SQLite in a process (its SQL is CPU in this machine: the process took the
    # engine past one core), PostgreSQL in a thread (the SQL runs in the server; the
    # process only added ~6 us of encoding a message, BENCHMARKS.md round 18).
    process: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Store(Protocol):
    """The durable store. Every method is synchronous and runs in the store's own worker thread
    (``dispatch.store.asyncstore``); implementations need not be thread-safe beyond that."""

    # campaigns
    def create_campaign(self, campaign: Campaign, change: StateChange,
                        audit: AuditEntry) -> Campaign: ...
    def get_campaign(self, campaign_id: int) -> Campaign | None: ...
    def get_campaign_by_external_id(self, external_id: uuid.UUID) -> Campaign | None: ...
    def apply_transition(self, campaign_id: int, transition: Transition, change: StateChange,
                         audit: AuditEntry | None, auto_start: bool | None = None
                         ) -> Campaign: ...
    def list_campaigns(self, flt: CampaignFilter) -> Page[Campaign]: ...
    def active_campaigns(self) -> list[Campaign]: ...
    def kpi(self) -> Kpi: ...
    def state_history(self, campaign_id: int) -> list[StateChange]: ...
    def audit_trail(self, campaign_id: int) -> list[AuditEntry]: ...
    # recipients and errors
    def add_recipients(self, campaign_id: int, rows: Iterable[RecipientRow],
                       now: datetime, held: bool = False) -> int: ...
    def release_held(self, campaign_id: int, ctn_hashes: Sequence[bytes] | None, count: int,
                     audit: AuditEntry) -> TriggerRelease: ...
    def delete_recipients(self, campaign_id: int) -> int: ...
    def add_job_errors(self, campaign_id: int, errors: Iterable[JobError],
                       now: datetime) -> int: ...
    def job_errors(self, campaign_id: int, offset: int, limit: int) -> Page[JobErrorView]: ...
    def list_recipients(self, campaign_id: int, flt: RecipientFilter) -> Page[RecipientView]: ...
    def find_by_ctn_hash(self, ctn_hash: bytes,
                         campaign_id: int | None = None) -> list[RecipientView]: ...
    # dispatch path
    def claim_for_send(self, campaign_id: int, limit: int,
                       now: datetime) -> list[ClaimedRecipient]: ...
    def in_flight_ids(self, campaign_id: int) -> list[int]: ...
    def record_submit_results(self, outcomes: Sequence[SubmitOutcome],
                              now: datetime) -> SubmitTally: ...
    def record_receipts(self, receipts: Sequence[Receipt], now: datetime) -> int: ...
    # the same, with the receipts already as (esme, message id key, stat, err, sms_result
    # value, done_at us) rows (``rows.receipt_rows``): what the store process receives
    def record_receipt_rows(self, rows: Sequence[tuple[str, str, str | None, str | None,
                                                       str | None, int | None]],
                            now: datetime) -> int: ...
    def retry_unmatched_receipts(self, now: datetime) -> int: ...
    def purge_unmatched_receipts(self, older_than: datetime) -> int: ...
    def unmatched_receipt_count(self) -> int: ...
    def recover_inflight(self, policy: RecoveryPolicy, now: datetime) -> RecoveryCounts: ...
    def mark_unsent(self, campaign_id: int, now: datetime, limit: int | None = None) -> int: ...
    def campaigns_with_unsent(self) -> list[int]: ...
    # counters
    def counters(self, campaign_id: int) -> Counters: ...
    def counters_many(self, campaign_ids: Sequence[int]) -> dict[int, Counters]: ...
    def daily_activity(self, campaign_id: int) -> list[DayActivity]: ...
    def pending_messages(self, kind: CampaignKind | None = None) -> int: ...
    def close(self) -> None: ...
