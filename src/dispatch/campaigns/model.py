"""The campaign domain model: enums, the ``Campaign`` record and its validation.

Times are timezone-aware ``datetime`` values (UTC is what the store keeps); the daily window is
expressed in local wall-clock times of an IANA zone so "09:00-21:00 Europe/Berlin" stays right
across DST changes (``dispatch.campaigns.schedule`` does that arithmetic).

Validation returns every failing field at once (``ValidationError.errors``), with messages the
control API returns verbatim in ``validationErrors``.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dispatch.campaigns.errors import ValidationError
from dispatch.smpp.text import is_gsm7


class CampaignStatus(enum.StrEnum):
    NEW = "New"
    PENDING = "Pending"
    BUILDING = "Building"
    SENDING = "Sending"
    PAUSED = "Paused"
    DONE = "Done"
    CANCELLED = "Cancelled"
    FAILED = "Failed"
    EXPIRED = "Expired"

    @property
    def is_active(self) -> bool:
        return self in ACTIVE_STATUSES

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


ACTIVE_STATUSES = frozenset({CampaignStatus.PENDING, CampaignStatus.BUILDING,
                             CampaignStatus.SENDING, CampaignStatus.PAUSED})
TERMINAL_STATUSES = frozenset({CampaignStatus.DONE, CampaignStatus.CANCELLED,
                               CampaignStatus.FAILED, CampaignStatus.EXPIRED})


class CampaignMode(enum.StrEnum):
    ON_DEMAND = "OnDemand"
    ON_TIME = "OnTime"
    SPREAD = "Spread"
    TRIGGER = "Trigger"


class CampaignKind(enum.StrEnum):
    BULK = "bulk"
    TRANSACTIONAL = "transactional"


class DataCoding(enum.StrEnum):
    AUTO = "auto"
    GSM7 = "gsm7"
    UCS2 = "ucs2"
    LATIN1 = "latin1"


class PausedBy(enum.StrEnum):
    """Who paused a campaign: the window reopening only resumes ``WINDOW`` pauses."""

    USER = "user"
    WINDOW = "window"


class RecipientStage(enum.StrEnum):
    """Where a recipient is in the send path. ``DELIVERED`` means the SMSC accepted the submit;
    the carrier's verdict is ``SmsResult`` (the two are distinct, PRODUCT.md). ``HELD``: a
    Trigger campaign's recipient waiting for its trigger event (never claimed until released)."""

    HELD = "Held"
    NEW = "New"
    SENDING = "Sending"
    DELIVERED = "Delivered"
    FAILED = "Failed"


class SmsResult(enum.StrEnum):
    """The delivery result from receipts; ``None`` (no value) until a receipt arrives."""

    DELIVERED = "delivered"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """Local wall-clock sending hours in an IANA zone. ``end <= start`` crosses midnight
    (22:00-06:00 is open from 22:00 to 06:00 the next day); ``start == end`` is refused."""

    start: time
    end: time
    tz: str = "UTC"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start


@dataclass(slots=True)
class Campaign:
    """One campaign. ``id`` is the store's internal key (``None`` before it is saved);
    ``external_id`` is the UUID callers see. ``priority`` 1..10, higher is more urgent: it is the
    weight of the campaign in the route's fair share. ``tps_cap`` ``None`` means uncapped."""

    sender: str
    text: str
    author: str
    esme: str
    mode: CampaignMode = CampaignMode.ON_DEMAND
    kind: CampaignKind = CampaignKind.BULK
    data_coding: DataCoding = DataCoding.AUTO
    start_at: datetime | None = None
    end_at: datetime | None = None
    window: DailyWindow | None = None
    auto_start: bool = False
    priority: int = 5
    tps_cap: float | None = None
    validity_period_s: int | None = None
    registered_delivery: bool = True
    source_path: str | None = None
    name: str = ""
    external_id: uuid.UUID = field(default_factory=uuid.uuid4)
    created_at: datetime | None = None
    status: CampaignStatus = CampaignStatus.NEW
    archived: bool = False
    paused_by: PausedBy | None = None
    id: int | None = None

    @property
    def placeholders(self) -> list[str]:
        return placeholders(self.text)


MAX_SENDER_CHARS = 20          # SMPP 3.4 source_addr is a C-octet string of at most 21 octets
MAX_TEXT_CHARS = 1530          # 10 GSM-7 segments of 153 characters
MIN_PRIORITY, MAX_PRIORITY = 1, 10
MAX_VALIDITY_PERIOD_S = 7 * 24 * 3600
MIN_VALIDITY_PERIOD_S = 60

# A name as a CSV header gives it, in any script ({name}, {name_2}, {Имя}): a letter or "_",
# then letters, digits, "_". Braces around anything else ({not a var}, {1x}) are text.
_PLACEHOLDER = re.compile(r"\{([^\W\d]\w*)\}")


def placeholders(text: str) -> list[str]:
    """The ``{var}`` names in ``text``, in order of first use (other braces are literal)."""
    seen: dict[str, None] = {}
    for match in _PLACEHOLDER.finditer(text):
        seen.setdefault(match.group(1), None)
    return list(seen)


def render_text(text: str, variables: Mapping[str, object] | None) -> str:
    """Fill ``{var}`` placeholders from a recipient's CSV columns; a missing one becomes empty
    (a half-filled text is better than a dropped message; the file parser reports missing
    columns as job errors)."""
    if not variables:
        return _PLACEHOLDER.sub("", text) if "{" in text else text
    return _PLACEHOLDER.sub(lambda m: str(variables.get(m.group(1), "")), text)


def _aware(value: datetime | None) -> bool:
    return value is None or (value.tzinfo is not None and value.utcoffset() is not None)


def text_problem(value: str) -> str | None:
    """Why no store can keep ``value``, or None: a NUL character (PostgreSQL's text type
    refuses it) or a lone UTF-16 surrogate (JSON escapes and undecodable command-line bytes
    make them; UTF-8 cannot encode it)."""
    if "\x00" in value:
        return "Must not contain NUL characters"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "Must be valid Unicode text (a lone surrogate is not)"
    return None


def validate(c: Campaign) -> None:
    """Raise ``ValidationError`` listing every invalid field of ``c`` (API field names)."""
    errors: dict[str, str] = {}
    for field_name, text in (("name", c.name), ("sender", c.sender), ("text", c.text),
                             ("author", c.author), ("esme", c.esme),
                             ("sourcePath", c.source_path or "")):
        problem = text_problem(text)
        if problem is not None:
            errors[field_name] = problem
    sender = c.sender.strip()
    if not sender:
        errors["sender"] = "Sender is required"
    elif len(sender) > MAX_SENDER_CHARS:
        errors["sender"] = f"Sender must be at most {MAX_SENDER_CHARS} characters"
    if not c.text:
        errors["text"] = "Text is required"
    elif len(c.text) > MAX_TEXT_CHARS:
        errors["text"] = f"Text must be at most {MAX_TEXT_CHARS} characters"
    elif c.data_coding is DataCoding.LATIN1:
        try:
            _PLACEHOLDER.sub("", c.text).encode("latin-1")
        except UnicodeEncodeError:
            errors["text"] = "Text contains characters outside Latin-1"
    elif c.data_coding is DataCoding.GSM7 and not is_gsm7(_PLACEHOLDER.sub("", c.text)):
        errors["text"] = "Text contains characters outside the GSM 03.38 alphabet"
    if not c.author.strip():
        errors["author"] = "Author is required"
    if not c.esme.strip():
        errors["esme"] = "ESME route is required"
    if not MIN_PRIORITY <= c.priority <= MAX_PRIORITY:
        errors["priority"] = f"Priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}"
    if c.tps_cap is not None and not c.tps_cap > 0:
        errors["tpsCap"] = "TPS cap must be greater than 0"
    if c.validity_period_s is not None and not (
            MIN_VALIDITY_PERIOD_S <= c.validity_period_s <= MAX_VALIDITY_PERIOD_S):
        errors["validityPeriod"] = (f"Validity period must be between {MIN_VALIDITY_PERIOD_S} "
                                    f"and {MAX_VALIDITY_PERIOD_S} seconds")
    for name, value in (("startAt", c.start_at), ("endAt", c.end_at)):
        if not _aware(value):
            errors[name] = "Time must include a time zone offset"
    if c.mode is CampaignMode.TRIGGER and c.kind is CampaignKind.TRANSACTIONAL:
        errors["mode"] = ("Trigger mode needs a recipient file; transactional campaigns "
                          "send each message as it is added")
    needs_start = c.mode in (CampaignMode.ON_TIME, CampaignMode.SPREAD, CampaignMode.TRIGGER)
    needs_end = c.mode in (CampaignMode.SPREAD, CampaignMode.TRIGGER)
    if needs_start and c.start_at is None:
        errors.setdefault("startAt", f"Start time is required for {c.mode} campaigns")
    if needs_end and c.end_at is None:
        errors.setdefault("endAt", f"End time is required for {c.mode} campaigns")
    if ("startAt" not in errors and "endAt" not in errors and c.start_at is not None
            and c.end_at is not None and c.end_at <= c.start_at):
        errors["endAt"] = "End time must be after start time"
    if c.window is not None:
        try:
            ZoneInfo(c.window.tz)
        except (ZoneInfoNotFoundError, ValueError):
            errors["window.timeZone"] = f"Unknown time zone {c.window.tz!r}"
        for name, edge in (("start", c.window.start), ("end", c.window.end)):
            # Wall-clock time in window.tz: an offset would make the engine compare an aware
            # time with a naive one (TypeError) and the API report the wrong hour.
            if edge.tzinfo is not None:
                errors[f"window.{name}"] = ("Must be a local time without a UTC offset "
                                            "(the zone is window.timeZone)")
        if "window.start" not in errors and "window.end" not in errors \
                and c.window.start == c.window.end:
            errors["window"] = "Window start and end must differ"
    if errors:
        raise ValidationError(errors)
