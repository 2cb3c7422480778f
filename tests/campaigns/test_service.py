"""CampaignService over the async store and a real SQLite file."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio

from dispatch.campaigns.errors import (
    BadRequest,
    CapacityExceeded,
    InvalidTransition,
    NotActive,
    NotFound,
    ValidationError,
)
from dispatch.campaigns.model import Campaign, CampaignKind, CampaignStatus, PausedBy
from dispatch.campaigns.service import (
    CampaignQuery,
    CampaignService,
    Period,
    ServiceConfig,
    TransactionalMessage,
)
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import RecoveryPolicy, StoreConfig, SubmitKind, SubmitOutcome
from dispatch.store.sqlite import SqliteStore

S = CampaignStatus


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def prepare(number: str) -> tuple[str, bytes, str]:
    digits = number.lstrip("+")
    if not digits.isdigit() or not 10 <= len(digits) <= 15:
        raise ValueError("bad number")
    return "+" + digits, hashlib.blake2b(digits.encode(), digest_size=16).digest(), \
        "*" * (len(digits) - 4) + digits[-4:]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[CampaignService, AsyncStore, Clock]]:
    store = SqliteStore(StoreConfig(path=str(tmp_path / "svc.sqlite3")))
    clock = Clock()
    astore = AsyncStore(store)
    yield (CampaignService(astore, ServiceConfig(max_pending_messages=10), clock, prepare),
           astore, clock)
    store.close()


def run(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    return trio.run(fn, *args)


def draft(**kw: Any) -> Campaign:
    base: dict[str, Any] = {"sender": " ACME ", "text": "Hi {name}", "author": "ann",
                            "esme": "smsc1", "source_path": "numbers.txt"}
    base.update(kw)
    return Campaign(**base)


def test_full_lifecycle_with_history_and_audit(env: Any) -> None:
    svc, _, clock = env

    async def main() -> None:
        c = await svc.create(draft())
        assert (c.status, c.sender, c.created_at) == (S.NEW, "ACME", clock.now)
        ext = c.external_id
        c = await svc.approve(ext, "mod", auto_start=False, note="ok")
        assert (c.status, c.auto_start) == (S.PENDING, False)
        c = await svc.start(ext, "ann")
        assert c.status is S.BUILDING
        c = await svc.mark_built(c.id)
        c = await svc.window_closed(c.id)
        assert (c.status, c.paused_by) == (S.PAUSED, PausedBy.WINDOW)
        c = await svc.pause(ext, "ann")  # a window pause becomes a hold by hand
        with pytest.raises(InvalidTransition):
            await svc.window_opened(c.id)
        c = await svc.resume(ext, "ann")
        assert c.status is S.SENDING and c.paused_by is None
        c = await svc.finish(c.id)
        c = await svc.archive(ext, "ann")
        assert c.archived and c.status is S.DONE
        with pytest.raises(InvalidTransition, match="Done \\(archived\\)"):
            await svc.cancel(ext, "ann")
        c = await svc.restore(ext, "ann")
        detail = await svc.detail(ext)
        assert [h.phase for h in detail.state_history] == [
            S.NEW, S.PENDING, S.BUILDING, S.SENDING, S.PAUSED, S.PAUSED, S.SENDING, S.DONE,
            S.DONE, S.DONE]
        assert [a.action for a in detail.audit] == [
            "create", "approve", "start", "pause", "resume", "archive", "restore"]
        assert detail.audit[1].note == "ok"
        assert detail.allowed_actions == ["archive"]
        assert detail.progress == 1.0

    run(main)


def test_reject_needs_note_and_errors_name_status(env: Any) -> None:
    svc, _, _ = env

    async def main() -> None:
        c = await svc.create(draft())
        with pytest.raises(ValidationError):
            await svc.reject(c.external_id, "mod", " ")
        c = await svc.reject(c.external_id, "mod", "spam")
        assert c.status is S.CANCELLED
        with pytest.raises(InvalidTransition, match="status Cancelled"):
            await svc.start(c.external_id, "ann")
        with pytest.raises(NotFound):
            await svc.get(uuid.uuid4())
        with pytest.raises(ValidationError) as info:
            await svc.create(draft(text=""))
        assert "text" in info.value.errors

    run(main)


def test_expire_marks_remaining_and_recovery(env: Any) -> None:
    svc, astore, clock = env

    async def main() -> None:
        c = await svc.create(draft(kind=CampaignKind.TRANSACTIONAL))
        await svc.approve(c.id, "mod")
        await svc.begin_build(c.id)
        await svc.mark_built(c.id)
        await svc.add_messages(c.id, [TransactionalMessage(f"+49170000000{i}") for i in range(5)])
        claimed = await astore.claim_for_send(c.id, 2, clock.now)
        await astore.record_submit_results(
            [SubmitOutcome(claimed[0].id, SubmitKind.ACCEPTED, "smsc1", ("1",))], clock.now)
        recovered = await astore.recover_inflight(RecoveryPolicy.MARK_UNKNOWN, clock.now)
        assert recovered.marked_unknown == 1
        c = await svc.expire(c.id)
        k = await svc.counters(c.id)
        assert (c.status, k.expired, k.sent, k.ambiguous, k.pending) == (S.EXPIRED, 3, 1, 1, 0)

    run(main)


def test_add_messages_rules(env: Any) -> None:
    svc, _, _ = env

    async def main() -> None:
        bulk = await svc.create(draft())
        with pytest.raises(BadRequest, match="Cannot add messages to bulk campaign"):
            await svc.add_messages(bulk.id, [TransactionalMessage("+491700000000")])
        tx = await svc.create(draft(kind=CampaignKind.TRANSACTIONAL))
        with pytest.raises(NotActive) as info:
            await svc.add_messages(tx.id, [TransactionalMessage("+491700000000")])
        assert "Campaign status is New" in info.value.message
        await svc.approve(tx.id, "mod", auto_start=True)
        with pytest.raises(ValidationError) as bad:
            await svc.add_messages(tx.id, [TransactionalMessage("+491700000000"),
                                           TransactionalMessage("12")])
        assert bad.value.errors == {"messages[1].phoneNumber": "Phone number must be 10-15 digits"}
        assert await svc.add_messages(
            tx.id, [TransactionalMessage("+49170000000" + str(i), {"name": "x"})
                    for i in range(8)]) == 8
        with pytest.raises(CapacityExceeded) as cap:
            await svc.add_messages(tx.id, [TransactionalMessage("+491700000000")] * 3)
        body = cap.value.to_body()
        assert (body["currentPending"], body["requestedCount"], body["maxAllowed"],
                body["availableCapacity"], body["retryAfterSeconds"]) == (8, 3, 10, 2, 30)
        too_many = [TransactionalMessage("+491700000000")] * 200_001
        with pytest.raises(BadRequest, match="Maximum 200000 recipients allowed per request"):
            await svc.add_messages(tx.id, too_many)

    run(main)


def test_lists_limits_and_kpi(env: Any) -> None:
    svc, _, clock = env

    async def main() -> None:
        for i in range(5):
            clock.now += timedelta(hours=2)
            await svc.create(draft(sender=f"S{i}"))
        page = await svc.list_campaigns(CampaignQuery(limit=2))
        assert page.total == 5 and [c.sender for c in page.items] == ["S4", "S3"]
        hour = await svc.list_campaigns(CampaignQuery(period=Period.HOUR))
        assert [c.sender for c in hour.items] == ["S4"]
        with pytest.raises(BadRequest, match="The limit parameter exceeds the allowed maximum"):
            await svc.list_campaigns(CampaignQuery(limit=201))
        assert (await svc.list_campaigns(CampaignQuery(limit=200))).total == 5
        with pytest.raises(ValidationError):
            await svc.list_campaigns(CampaignQuery(limit=0))
        first = page.items[0]
        with pytest.raises(BadRequest, match="exceeds the allowed maximum"):
            await svc.recipients(first.external_id, limit=500)
        assert (await svc.recipients(first.external_id)).total == 0
        assert (await svc.message_errors(first.external_id)).items == []
        assert (await svc.job_errors(first.external_id)).total == 0
        kpi = await svc.kpi()
        assert (kpi.total, kpi.active) == (5, 0)

    run(main)
