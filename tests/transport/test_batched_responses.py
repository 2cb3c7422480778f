"""The bind's batched receive path against the per-PDU one it replaced, without a network:
``BindPool._resolved_batch`` settles a run of submit_sm_resp exactly as ``_resolved`` one by
one did (outcomes, retries, throttling, every statistic), and ``_first_slice`` cuts a read
into the slices of ``READ_SLICE_EVENTS`` events the per-PDU events would have made."""

from __future__ import annotations

from typing import Any

import pytest

from dispatch.observability.receipts import ReceiptStatistics
from dispatch.smpp.constants import CommandId, CommandStatus
from dispatch.smpp.events import DeliverSmBatch, GenericNack, SubmitSmRespBatch, Unbound
from dispatch.smpp.text import split_text
from dispatch.transport.bind import READ_SLICE_EVENTS, _first_slice
from dispatch.transport.config import EsmeConfig
from dispatch.transport.pool import BindPool, OutboundMessage, _Job

S = CommandStatus
RESP = int(CommandId.SUBMIT_SM_RESP)


class _Bind:
    """What the pool reads of a bind when it settles responses."""

    def __init__(self) -> None:
        self.bind_id = "op/trx0"
        self.inflight: dict[int, _Job] = {}


def _pool_with_jobs() -> tuple[BindPool, _Bind]:
    pool = BindPool(EsmeConfig(name="op", host="h", port=1, system_id="s", password="p"))
    pool.receipt_stats = ReceiptStatistics(sample_every=2)
    bind = _Bind()
    for seq in range(1, 41):
        text = "x" * 200 if seq % 5 == 0 else f"hello {seq}"  # every fifth: two segments
        job = _Job(OutboundMessage(ref=seq, source_addr=b"Shop",
                                   destination_addr=b"49151%08d" % seq,
                                   segments=split_text(text)))
        job.sent_at = 10.0 if seq < 20 else 10.25  # two submit batches
        job.attempts = 1
        bind.inflight[seq] = job
    return pool, bind


def _responses() -> list[tuple[int, int, int, Any]]:
    statuses = {3: S.ESME_RTHROTTLED, 7: S.ESME_RSYSERR, 8: S.ESME_RINVDSTADR,
                21: S.ESME_RMSGQFUL, 22: S.ESME_RSYSERR}
    pdus = [(RESP, statuses.get(seq, 0), seq, b"%08X" % (0xA0 + seq) if seq not in statuses
             else None) for seq in range(1, 41) if seq not in (12, 30)]
    pdus.insert(9, (RESP, 0, 777, b"late"))  # a job no longer in flight
    pdus.append((RESP, 0, 5, b"twice"))  # settled above already
    return pdus


def _snapshot(pool: BindPool, bind: _Bind, out: list[Any]) -> tuple[Any, ...]:
    return (out, pool.statistics(), pool.paused_until,
            [(j.msg.ref, j.part, list(j.message_ids)) for j in pool._front],
            sorted((when, j.msg.ref, j.sys_retries) for when, _, j in pool._retry),
            dict(pool.receipt_stats._tracked), list(pool.statistics().responses_by_status),
            sorted(bind.inflight))


@pytest.mark.parametrize("split", [1, 7, 1000])
def test_a_run_of_responses_settles_as_one_by_one(split: int) -> None:
    old_pool, old_bind = _pool_with_jobs()
    new_pool, new_bind = _pool_with_jobs()
    pdus, now = _responses(), 10.5
    old_out: list[Any] = []
    old_freed = 0
    for _, status, seq, body in pdus:  # the per-PDU reader's loop
        job = old_bind.inflight.pop(seq, None)
        if job is None:
            old_pool.stats_late_responses += 1
            continue
        old_freed += 1
        old_pool._resolved(old_bind, job, status, body, now, old_out)  # type: ignore[arg-type]
    new_out: list[Any] = []
    new_freed = sum(new_pool._resolved_batch(new_bind, pdus[i:i + split], now,  # type: ignore[arg-type]
                                             new_out) for i in range(0, len(pdus), split))
    assert new_freed == old_freed == 38
    assert _snapshot(new_pool, new_bind, new_out) == _snapshot(old_pool, old_bind, old_out)
    assert new_pool._latency_sum_s == old_pool._latency_sum_s  # summed in the same order


def _expand(events: list[Any]) -> list[Any]:
    out: list[Any] = []
    for ev in events:
        if type(ev) in (SubmitSmRespBatch, DeliverSmBatch):
            out += [(type(ev), pdu) for pdu in ev.pdus]
        else:
            out.append(ev)
    return out


@pytest.mark.parametrize("sizes", [
    [100], [READ_SLICE_EVENTS], [READ_SLICE_EVENTS + 1], [300, 0, 300, 0, 5],
    [READ_SLICE_EVENTS - 1, 0, 2], [2000, 1, 0, 700], [0] * 600 + [3]])
def test_a_read_is_sliced_as_its_per_pdu_events_were(sizes: list[int]) -> None:
    # a size: a batch of that many PDUs, alternately submit_sm_resp and deliver_sm; 0: one
    # event of its own (alternately a generic_nack and an unbind)
    events: list[Any] = []
    for i, size in enumerate(sizes):
        if size:
            kind = SubmitSmRespBatch if i % 2 == 0 else DeliverSmBatch
            events.append(kind([(RESP, 0, i * 10000 + k, b"") for k in range(size)]))
        else:
            events.append(GenericNack(0, i, None) if i % 2 else Unbound(by_peer=True))
    expected = _expand(events)
    steps = 0
    while events:
        head, events = _first_slice(events)
        assert _expand(head) == expected[:READ_SLICE_EVENTS]
        expected = expected[READ_SLICE_EVENTS:]
        steps += 1
        assert steps < 100
    assert expected == []
