"""``dispatch.store.process.StoreProcess`` against a real SQLite file: results and the store's
own errors come back as they would from the store in a thread; a dead child is a store fault
and the next call starts a new one; the child leaves when its engine is gone.
(An engine whose store process is killed mid-campaign: tests/hardening/test_store_process_killed.py.)
"""

from __future__ import annotations

import os
import pickle
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from store_fixtures import T0, new_campaign, query, rows, sending_campaign

from dispatch.campaigns.errors import NotFound
from dispatch.campaigns.lifecycle import Event, StateChange, apply
from dispatch.campaigns.model import SmsResult
from dispatch.store.base import (
    Receipt,
    RecipientRow,
    Store,
    StoreConfig,
    SubmitKind,
    SubmitOutcome,
)
from dispatch.store.faults import STORE_FAULTS
from dispatch.store.process import StoreProcess, StoreProcessLost
from dispatch.store.sqlite import SqliteStore


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:  # a zombie (exited, not reaped) counts as gone
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_results_and_errors_come_back_as_from_the_store_itself(tmp_path: Path) -> None:
    config = StoreConfig(path=str(tmp_path / "s.sqlite3"))
    store = StoreProcess(config)
    try:
        assert store.pid is not None and store.pid != os.getpid()
        created = new_campaign(store)  # type: ignore[arg-type]
        assert created.id is not None
        assert store.get_campaign(created.id) == created
        rows = (RecipientRow(f"7900000000{i}", bytes([i]) * 16, f"7900****0{i}", {"n": i}, i)
                for i in range(5))  # a generator: sent as a list
        assert store.add_recipients(created.id, rows, T0) == 5
        assert store.counters(created.id).total == 5
        t = apply(Event.APPROVE, created.status, created.archived, created.paused_by)
        with pytest.raises(NotFound, match="Campaign not found"):
            store.apply_transition(10_000, t, StateChange(t.to_status, "approve", "why", T0),
                                   None)
    finally:
        store.close()
    assert store.pid is None
    with pytest.raises(RuntimeError, match="closed"):  # not a new child nobody would close
        store.counters(created.id)
    direct = SqliteStore(config)  # what the child wrote is in the file for any connection
    try:
        assert direct.counters(created.id).total == 5
    finally:
        direct.close()


def test_the_child_leaves_when_its_engine_is_gone(tmp_path: Path) -> None:
    store = StoreProcess(StoreConfig(path=str(tmp_path / "s.sqlite3")))
    link = store._link
    assert link is not None and store.pid is not None and _alive(store.pid)
    # What a SIGKILLed engine leaves behind: its end of the socket gone, no goodbye. (A
    # close() here would not do: the link's reader thread, blocked reading it, keeps it open.)
    with socket.socket(fileno=os.dup(link.conn.fileno())) as ours:
        ours.shutdown(socket.SHUT_RDWR)
    assert link.proc.wait(10) == 0
    assert not _alive(link.proc.pid)
    store._link = None


def test_a_dead_child_is_a_store_fault_and_the_next_call_starts_another(
        tmp_path: Path) -> None:
    store = StoreProcess(StoreConfig(path=str(tmp_path / "s.sqlite3")))
    try:
        created = new_campaign(store)  # type: ignore[arg-type]
        assert created.id is not None
        first = store.pid
        assert store._link is not None
        store.kill()
        store._link.proc.wait(10)
        with pytest.raises(StoreProcessLost) as lost:
            store.get_campaign(created.id)
        assert isinstance(lost.value, STORE_FAULTS)  # the engine's outage handling applies
        assert store.get_campaign(created.id) == created
        assert store.pid not in (None, first)
    finally:
        store.close()


def test_a_store_that_cannot_open_raises_its_own_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(Exception) as raised:  # a directory that is a file: SQLite's error
        StoreProcess(StoreConfig(path=str(tmp_path / "file" / "s.sqlite3")))
    assert not isinstance(raised.value, StoreProcessLost)


def _dispatch_round(store: Store) -> tuple[object, ...]:
    """Claim, submit results of every kind (one of two segments), receipts (final, without a
    time, intermediate, unmatched) on ``store``; what the store ends up holding."""
    c = sending_campaign(store)
    assert c.id is not None
    store.add_recipients(c.id, rows(6), T0)
    claimed = store.claim_for_send(c.id, 6, T0)
    ids = [r.id for r in claimed]
    kinds = [SubmitKind.ACCEPTED, SubmitKind.ACCEPTED, SubmitKind.ACCEPTED, SubmitKind.FAILED,
             SubmitKind.RETRY, SubmitKind.UNKNOWN]
    tally = store.record_submit_results(
        [SubmitOutcome(rid, kind, "smsc1", (f"m{rid}", f"m{rid}b") if i == 2 else
                       ((f"m{rid}",) if kind is SubmitKind.ACCEPTED else ()),
                       "ESME_ROK" if kind is SubmitKind.ACCEPTED else "ESME_RSYSERR",
                       None if kind is SubmitKind.ACCEPTED else "refused")
         for i, (rid, kind) in enumerate(zip(ids, kinds, strict=True))], T0)
    matched = store.record_receipts(
        [Receipt("smsc1", f"m{ids[0]}", "DELIVRD", "000", SmsResult.DELIVERED, T0),
         Receipt("smsc1", f"m{ids[1]}", "UNDELIV", "0é1", SmsResult.FAILED, None),
         Receipt("smsc1", f"m{ids[2]}", "ENROUTE", None, None, T0),
         Receipt("smsc1", "nobody", "DELIVRD", "000", SmsResult.DELIVERED, T0)], T0)
    recipients = query(store, "SELECT stage, esme, submit_status, message_ids, sms_result, "
                       "receipt_stat, receipt_err, error, attempts, segments, done_at_us "
                       "FROM recipients ORDER BY id")
    return (tally, matched, store.counters(c.id), store.unmatched_receipt_count(), recipients)


def test_the_dispatch_path_through_the_process_equals_the_store_itself(
        tmp_path: Path) -> None:
    direct = SqliteStore(StoreConfig(path=str(tmp_path / "direct.sqlite3")))
    proxied = StoreProcess(StoreConfig(path=str(tmp_path / "proxied.sqlite3")))
    try:
        expected = _dispatch_round(direct)
        assert expected[0].accepted == 3 and expected[1] == 3  # the round does what it says
        assert _dispatch_round(proxied) == expected  # type: ignore[arg-type]
    finally:
        direct.close()
        proxied.close()


def test_arguments_that_do_not_pickle_fail_that_call_only(tmp_path: Path) -> None:
    """Nothing is queued for a call whose arguments cannot be sent: the next call still gets
    its own answer, not the one meant for another."""
    store = StoreProcess(StoreConfig(path=str(tmp_path / "s.sqlite3")))
    follow_up: threading.Thread | None = None
    try:
        created = new_campaign(store)  # type: ignore[arg-type]
        assert created.id is not None
        with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
            store.counters(lambda: created.id)  # type: ignore[arg-type]
        answers: list[object] = []
        # (bounded: a call whose answer went to another waiter would wait for ever)
        follow_up = threading.Thread(target=lambda: answers.extend(
            [store.get_campaign(created.id), store.counters(created.id).total]), daemon=True)
        follow_up.start()
        follow_up.join(10)
        assert answers == [created, 0]
    finally:
        if follow_up is None or not follow_up.is_alive():  # else close() would wait too
            store.close()


class _FirstAnswerUnreadable:
    """The link's real connection, except that the first answer, read whole from the real
    socket, does not unpickle (as an answer of a class the engine cannot import would not)."""

    def __init__(self, conn: Any) -> None:
        self._conn, self._spoilt = conn, False

    def recv(self) -> Any:
        data = self._conn.recv_bytes()
        if not self._spoilt:
            self._spoilt = True
            raise pickle.UnpicklingError("no such class")
        return pickle.loads(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_an_answer_that_does_not_unpickle_fails_its_call_only(tmp_path: Path) -> None:
    store = StoreProcess(StoreConfig(path=str(tmp_path / "s.sqlite3")))
    calls: threading.Thread | None = None
    try:
        created = new_campaign(store)  # type: ignore[arg-type]
        assert created.id is not None and store._link is not None
        link = store._link
        # The reader thread may already wait in the real connection's recv: the spoilt
        # answer is then the second after the swap, else the first.
        link.conn = _FirstAnswerUnreadable(link.conn)  # type: ignore[assignment]
        outcomes: list[object] = []

        def three_calls() -> None:
            for _ in range(3):
                try:
                    outcomes.append(store.counters(created.id).total)  # type: ignore[arg-type]
                except RuntimeError as exc:
                    outcomes.append(str(exc))

        calls = threading.Thread(target=three_calls, daemon=True)  # bounded: a reader that
        calls.start()  # died with the bad answer would leave its caller waiting for ever
        calls.join(10)
        assert len(outcomes) == 3
        spoilt = [o for o in outcomes if isinstance(o, str)]
        assert len(spoilt) == 1 and "could not be read" in spoilt[0]
        assert outcomes[-1] == 0  # the calls after it get their own answers
    finally:
        if calls is None or not calls.is_alive():
            store.close()


def test_claimed_rows_come_back_with_their_variables_as_the_store_read_them(
        tmp_path: Path) -> None:
    """Claims come back as msgpack, not pickle: the rows, their attempts and their variables
    (str, numbers, lists, nested maps, unicode, none at all) equal a claim on the store
    itself, row type included."""
    config = StoreConfig(path=str(tmp_path / "s.sqlite3"))
    variables = [None, {"name": "Ana"}, {"n": 3, "x": 1.5, "ok": True, "none": None},
                 {"list": [1, "two", [3]], "map": {"k": "v"}}, {"ü": "naïve ☃"}]
    store = StoreProcess(config)
    direct = SqliteStore(config)
    try:
        via_proxy = sending_campaign(store).id or 0  # type: ignore[arg-type]
        in_thread = sending_campaign(direct).id or 0
        for cid, target in ((via_proxy, store), (in_thread, direct)):
            target.add_recipients(cid, [RecipientRow(f"7900000000{i}", bytes([i]) * 16,
                                                     f"7900****0{i}", v, i + 1)
                                        for i, v in enumerate(variables)], T0)
        got, want = store.claim_for_send(via_proxy, 10, T0), direct.claim_for_send(
            in_thread, 10, T0)
        assert [(r.number, r.variables, r.attempts) for r in got] == \
            [(r.number, r.variables, r.attempts) for r in want]
        assert [r.variables for r in got] == variables
        assert all(type(r) is type(w) for r, w in zip(got, want, strict=True))
        assert store.claim_for_send(via_proxy, 10, T0) == []
    finally:
        store.close()
        direct.close()


def test_recipients_sent_as_msgpack_are_stored_as_the_store_itself_stores_them(
        tmp_path: Path) -> None:
    """add_recipients goes to the store process as msgpack (a generator too): numbers, ctn
    hashes (any bytes), masks, variables of every JSON shape and unicode, line numbers and the
    Held stage land exactly as a call on the store itself writes them."""
    config = StoreConfig(path=str(tmp_path / "s.sqlite3"))
    variables = [None, {"name": "Ana"}, {"n": 3, "x": 1.5, "ok": False, "none": None},
                 {"list": [1, "two", [3]], "map": {"k": "v"}}, {"ü": "naïve ☃ \x00"}]
    rows = [RecipientRow(f"7900000000{i}", bytes([0, i, 255]) + b"\x00" * 13,
                         f"7900****0{i}", v, i + 10) for i, v in enumerate(variables)]
    store = StoreProcess(config)
    direct = SqliteStore(config)
    try:
        via_proxy = sending_campaign(store).id or 0  # type: ignore[arg-type]
        in_thread = sending_campaign(direct).id or 0
        assert store.add_recipients(via_proxy, (r for r in rows), T0, True) == len(rows)
        assert direct.add_recipients(in_thread, rows, T0, True) == len(rows)
        sql = ("SELECT number, ctn_hash, masked, variables, line_no, stage, created_at_us "
               "FROM recipients WHERE campaign_id = ? ORDER BY id")
        got = query(store, sql, (via_proxy,))  # type: ignore[arg-type]
        assert got == query(direct, sql, (in_thread,))
        assert [g[5] for g in got] == ["Held"] * len(rows)
        assert store.counters(via_proxy).held == len(rows)
    finally:
        store.close()
        direct.close()
