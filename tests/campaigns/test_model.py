from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from dispatch.campaigns.errors import CapacityExceeded, ValidationError
from dispatch.campaigns.model import (
    Campaign,
    CampaignMode,
    DailyWindow,
    DataCoding,
    placeholders,
    render_text,
    validate,
)

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def make(**kw: object) -> Campaign:
    base: dict[str, object] = {"sender": "ACME", "text": "Hi {name}", "author": "ann",
                               "esme": "smsc1"}
    base.update(kw)
    return Campaign(**base)  # type: ignore[arg-type]


def test_valid_campaign_passes() -> None:
    validate(make())
    validate(make(mode=CampaignMode.SPREAD, start_at=T0, end_at=T0 + timedelta(hours=2),
                  window=DailyWindow(time(22), time(6), "Europe/Berlin")))


def test_all_field_errors_reported_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        validate(make(sender=" ", text="", author="", esme="", priority=0, tps_cap=0,
                      validity_period_s=5))
    assert set(info.value.errors) == {"sender", "text", "author", "esme", "priority", "tpsCap",
                                      "validityPeriod"}
    body = info.value.to_body()
    assert body["validationErrors"]["sender"] == "Sender is required"


@pytest.mark.parametrize(("kw", "field"), [
    ({"mode": CampaignMode.ON_TIME}, "startAt"),
    ({"mode": CampaignMode.SPREAD, "start_at": T0}, "endAt"),
    ({"mode": CampaignMode.TRIGGER, "start_at": T0, "end_at": T0}, "endAt"),
    ({"start_at": datetime(2026, 1, 1)}, "startAt"),
    ({"window": DailyWindow(time(9), time(9))}, "window"),
    ({"window": DailyWindow(time(9), time(10), "Mars/Olympus")}, "window.timeZone"),
    ({"sender": "X" * 21}, "sender"),
    ({"text": "é€", "data_coding": DataCoding.LATIN1}, "text"),
    ({"text": "Hi {name} ☺", "data_coding": DataCoding.GSM7}, "text"),
    # What no store can keep: NUL (PostgreSQL) and lone surrogates (UTF-8).
    ({"name": "a\x00b"}, "name"),
    ({"sender": "A\udcffB"}, "sender"),
    ({"text": "hi \ud800"}, "text"),
    ({"esme": "smsc\x00"}, "esme"),
    ({"author": "\udc80"}, "author"),
    ({"source_path": "/tmp/\udcff.txt"}, "sourcePath"),
])
def test_field_errors(kw: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate(make(**kw))
    assert field in info.value.errors


def test_an_explicit_coding_takes_every_text_it_can_carry() -> None:
    validate(make(text="Hi {name}, 5€ [ok] ^_^ Ü ñ é @ £", data_coding=DataCoding.GSM7))
    validate(make(text="Café {n}", data_coding=DataCoding.LATIN1))
    validate(make(text="Hi ☺", data_coding=DataCoding.UCS2))


def test_placeholders_and_render() -> None:
    text = "Hi {name}, code {code} for {name} {not a var} {1x}"
    assert placeholders(text) == ["name", "code"]
    assert render_text(text, {"name": "Ann", "code": 42}) == \
        "Hi Ann, code 42 for Ann {not a var} {1x}"
    assert render_text("Hi {name}", None) == "Hi "
    assert render_text("plain", None) == "plain"
    # Header names in any script, and the suffixed names of repeated columns.
    assert placeholders("Здравствуйте, {Имя}! {name_2} {Stadt_1}") == ["Имя", "name_2",
                                                                         "Stadt_1"]
    assert render_text("Здравствуйте, {Имя}! {name_2}", {"Имя": "Анна", "name_2": "B"}) == \
        "Здравствуйте, Анна! B"


def test_capacity_error_body_matches_seed_shape() -> None:
    body = CapacityExceeded(48500, 5000, 50000, 30).to_body()
    assert body == {
        "error": "Rate limit exceeded",
        "message": "Too many pending messages. You have 48500 pending messages and requested "
                   "5000 more. Maximum allowed: 50000. Available capacity: 1500.",
        "currentPending": 48500, "requestedCount": 5000, "maxAllowed": 50000,
        "availableCapacity": 1500, "retryAfterSeconds": 30}
