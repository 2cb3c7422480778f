"""A daily window is wall-clock time in its own zone (PRODUCT.md, Modes): the service refuses
window edges that carry a UTC offset instead of storing a campaign the scheduler cannot
evaluate."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
import trio

from dispatch.campaigns.errors import ValidationError
from dispatch.campaigns.model import Campaign, DailyWindow
from dispatch.campaigns.schedule import window_open
from dispatch.campaigns.service import CampaignQuery, CampaignService, ServiceConfig
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import StoreConfig
from dispatch.store.sqlite import SqliteStore

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("start,end,field", [
    (time(9, tzinfo=UTC), time(21), "window.start"),
    (time(9), time(21, tzinfo=timezone(timedelta(hours=3))), "window.end"),
])
def test_window_edges_with_an_offset_are_refused(tmp_path: Path, start: time, end: time,
                                                 field: str) -> None:
    store = SqliteStore(StoreConfig(path=str(tmp_path / "svc.sqlite3")))
    service = CampaignService(AsyncStore(store), ServiceConfig(), lambda: NOW)
    campaign = Campaign(sender="ACME", text="Hi", author="ann", esme="smsc1",
                        window=DailyWindow(start, end, "Europe/Berlin"))

    async def main() -> None:
        with pytest.raises(ValidationError) as caught:
            await service.create(campaign)
        assert set(caught.value.errors) == {field}
        assert (await service.list_campaigns(CampaignQuery())).total == 0

    try:
        trio.run(main)
    finally:
        store.close()


def test_a_naive_window_of_the_same_hours_is_stored_and_evaluated(tmp_path: Path) -> None:
    store = SqliteStore(StoreConfig(path=str(tmp_path / "svc.sqlite3")))
    service = CampaignService(AsyncStore(store), ServiceConfig(), lambda: NOW)
    campaign = Campaign(sender="ACME", text="Hi", author="ann", esme="smsc1",
                        window=DailyWindow(time(9), time(21), "Europe/Berlin"))

    async def main() -> None:
        created = await service.create(campaign)
        stored = await service.get(created.external_id)
        assert stored.window == DailyWindow(time(9), time(21), "Europe/Berlin")
        assert window_open(stored.window, NOW)  # 11:00 in Berlin

    try:
        trio.run(main)
    finally:
        store.close()
