"""The builder: a recipient file becomes stored recipients and job errors a person can read."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import trio

from dispatch.campaigns.lifecycle import AuditEntry, StateChange
from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.engine.builder import build_recipients
from dispatch.ingest import IngestOptions
from dispatch.store import open_store
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import StoreConfig

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_every_line_error_gets_a_readable_message(tmp_path: Path) -> None:
    source = tmp_path / "numbers.txt"
    source.write_bytes(b"79123456789\n"          # valid
                       b"7912x456789\n"          # invalid_characters
                       b"912345\n"               # too_short
                       b"1234567890123456\n"     # too_long
                       b"0123456789\n"           # bad_country_code
                       b"\xff\xfe79123456780\n"  # bad_encoding
                       + b"7" * 80 + b"\n")      # line_too_long
    store = open_store(StoreConfig(path=str(tmp_path / "s.sqlite3")))
    c = Campaign(sender="ACME", text="Hi", author="ann", esme="sim", source_path=str(source))
    c = store.create_campaign(c, StateChange(CampaignStatus.NEW, "create", "", T0),
                              AuditEntry("ann", "create", "", T0))
    assert c.id is not None

    async def main() -> None:
        astore = AsyncStore(store)
        summary = await build_recipients(c, astore, IngestOptions(bytes(16), max_line_bytes=64),
                                         lambda: T0)
        assert summary.valid == 1
        page = await astore.job_errors(c.id or 0, 0, 50)
        messages = {(e.line_no, e.reason): e.message for e in page.items}
        assert messages == {
            (2, "invalid_characters"): "Phone number contains invalid characters",
            (3, "too_short"): "Phone number has fewer than 10 digits",
            (4, "too_long"): "Phone number has more than 15 digits",
            (5, "bad_country_code"): "Phone number starts with 0: no country code",
            (6, "bad_encoding"): "Line is not valid UTF-8",
            (7, "line_too_long"): "Line is too long",
        }
        await astore.aclose()

    trio.run(main)
