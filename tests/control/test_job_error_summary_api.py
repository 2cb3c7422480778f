"""The errors list through the API when a campaign's retry exhaustions pass the number listed
one by one (``StoreConfig.retry_exhausted_errors_listed``, 1000 by default): the rest are one
summary row whose ``occurrences`` says how many it stands for, and the job count is the true
total."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import trio
from control_env import api_env
from test_recipients_api import active_transactional, sending

from dispatch.campaigns.service import ServiceConfig
from dispatch.store.base import SubmitKind, SubmitOutcome

API = "/api/v1"
LISTED, BEYOND = 1000, 7


def test_retry_exhaustions_past_the_listed_ones_are_one_row_with_their_count(tmp_path):
    async def main():
        async with api_env(tmp_path, service_config=ServiceConfig(max_pending_messages=5000),
                           ) as env:
            cid = await active_transactional(env)
            messages = [{"phoneNumber": f"+7912{i:07d}"} for i in range(LISTED + BEYOND)]
            r = await env.client.post(f"{API}/campaigns/{cid}/messages",
                                      key=env.keys["author"], json={"messages": messages})
            assert r.status_code == 202, r.text
            campaign = await env.service.get(uuid.UUID(cid))
            await sending(env, campaign.id)
            now = datetime.now(UTC)
            claimed = await env.store.claim_for_send(campaign.id, LISTED + BEYOND, now)
            assert len(claimed) == LISTED + BEYOND
            await env.store.record_submit_results(
                [SubmitOutcome(c.id, SubmitKind.FAILED, "smsc1", (), "ESME_RTHROTTLED",
                               "throttled", exhausted_after=3) for c in claimed], now)

            items: list[dict] = []
            for offset in range(0, LISTED + 200, 200):  # every page of the job errors
                r = await env.client.get(f"{API}/campaigns/{cid}/errors",
                                         key=env.keys["viewer"],
                                         params={"limit": 200, "jobOffset": offset})
                assert r.status_code == 200, r.text
                assert r.json["counts"]["job"] == LISTED + BEYOND
                items += r.json["jobErrors"]["items"]
            assert len(items) == LISTED + 1
            assert all(e["reason"] == "retry_exhausted" for e in items)
            [summary] = [e for e in items if e["lineNo"] == 0]
            assert summary["occurrences"] == BEYOND
            listed = [e for e in items if e["lineNo"] > 0]
            assert len({e["lineNo"] for e in listed}) == LISTED
            assert all(e["occurrences"] == 1 for e in listed)
    trio.run(main)
