"""Delivery receipts as real SMSCs send them, not only as Appendix B draws them: the receipt
text in a message_payload TLV instead of short_message (SMPP 3.4 section 5.3.2.32), the text
in UCS-2 (data_coding 0x08, section 5.2.19), the receipt marked only by its
receipted_message_id TLV (section 5.3.2.12). Each is sent by a scripted SMSC over loopback
with the real codec, and must reach the pool's consumer as a receipt matching its submit."""

from __future__ import annotations

import struct
from typing import Any

import trio

from dispatch.smpp.constants import ESM_CLASS_DELIVERY_RECEIPT, CommandId, Tlv
from dispatch.smpp.session import BindRequest, Response, SmscSession
from dispatch.transport.pool import MoMessage, ReceiptEvent
from pool_harness import pool_against, scripted_smsc

RECEIPT_TEXT = ("id:1A2B3C sub:001 dlvrd:001 submit date:2611231200 "
                "done date:2611231201 stat:DELIVRD err:000 text:hello")


def _deliver(short_message: bytes, *, esm_class: int = ESM_CLASS_DELIVERY_RECEIPT,
             data_coding: int = 0, tlvs: Any = None) -> tuple[Any, ...]:
    return (b"", 1, 1, b"4915100000001", 5, 0, b"Shop", esm_class, 0, 0, b"", b"", 0, 0,
            data_coding, 0, short_message, tlvs)


async def _events_for(delivers: list[tuple[Any, ...]]) -> tuple[list[Any], list[int]]:
    """Bind a pool to a scripted SMSC that sends ``delivers`` right after the bind; return
    the receipt / MO events the pool hands on and the deliver_sm sequence numbers answered."""
    answered: list[int] = []
    done = trio.Event()

    def script(session: SmscSession, ev: Any) -> None:
        if isinstance(ev, BindRequest):
            session.accept_bind(ev)
            session.send_deliver_sm_batch(delivers)
        elif isinstance(ev, Response) and ev.command_id == CommandId.DELIVER_SM_RESP:
            answered.append(ev.sequence_number)
            if len(answered) == len(delivers):
                done.set()

    events: list[Any] = []
    async with pool_against(scripted_smsc(script)) as pool:
        with trio.fail_after(10):
            while len(events) < len(delivers):
                events += [e for e in await pool.outcomes.receive()
                           if isinstance(e, ReceiptEvent | MoMessage)]
            await done.wait()
    return events, answered


async def test_receipt_text_in_message_payload_is_parsed() -> None:
    """Section 5.3.2.32: message_payload carries the text when short_message is empty
    (sm_length 0); a receipt sent that way still names its message and outcome."""
    events, answered = await _events_for(
        [_deliver(b"", tlvs=[(Tlv.MESSAGE_PAYLOAD, RECEIPT_TEXT.encode())])])
    (receipt,) = events
    assert isinstance(receipt, ReceiptEvent)
    assert (receipt.message_id, receipt.stat, receipt.sms_result) == ("1a2b3c", "DELIVRD",
                                                                      "delivered")
    assert answered == [1]


async def test_ucs2_receipt_text_is_parsed() -> None:
    """An SMSC that copies the submit's data_coding 0x08 into the receipt writes its text in
    UCS-2 (UTF-16-BE): the id and stat are read from the decoded text."""
    events, _ = await _events_for([
        _deliver(RECEIPT_TEXT.encode("utf-16-be"), data_coding=0x08),
        _deliver(b"", data_coding=0x08,
                 tlvs=[(Tlv.MESSAGE_PAYLOAD, RECEIPT_TEXT.replace("1A2B3C", "FF01")
                        .replace("DELIVRD", "UNDELIV").encode("utf-16-be"))]),
    ])
    assert [(e.message_id, e.stat, e.sms_result) for e in events] == [
        ("1a2b3c", "DELIVRD", "delivered"), ("ff01", "UNDELIV", "failed")]


async def test_ascii_receipt_with_ucs2_data_coding_is_still_read_as_ascii() -> None:
    """Many SMSCs copy data_coding 0x08 from the submit but write the receipt in ASCII."""
    events, _ = await _events_for([_deliver(RECEIPT_TEXT.encode(), data_coding=0x08)])
    assert [(e.message_id, e.stat) for e in events] == [("1a2b3c", "DELIVRD")]


async def test_receipt_marked_only_by_receipted_message_id_is_a_receipt() -> None:
    """esm_class 0 but a receipted_message_id TLV (section 5.3.2.12, which only a receipt
    carries) and message_state: a receipt, as the fast path's ``parse_receipts`` says too,
    never an MO message."""
    events, answered = await _events_for([
        _deliver(b"", esm_class=0, tlvs=[(Tlv.RECEIPTED_MESSAGE_ID, b"77AB\x00"),
                                         (Tlv.MESSAGE_STATE, b"\x02")])])
    (receipt,) = events
    assert isinstance(receipt, ReceiptEvent)
    assert (receipt.message_id, receipt.stat, receipt.sms_result) == ("77ab", "DELIVRD",
                                                                      "delivered")
    assert answered == [1]


async def test_a_receipt_sent_as_data_sm_is_read_and_answered_with_data_sm_resp() -> None:
    """Section 4.7: an SMSC may deliver the receipt as data_sm, the receipt in TLVs only
    (receipted_message_id, message_state). It reaches the consumer as a receipt, and the
    answer is a data_sm_resp of its sequence number (a deliver_sm_resp would not match; it
    was refused with ESME_RINVBNDSTS, so the receipt was lost)."""
    tlvs = (struct.pack(">HH", Tlv.RECEIPTED_MESSAGE_ID, 5) + b"77AB\x00"
            + struct.pack(">HH", Tlv.MESSAGE_STATE, 1) + b"\x02")
    body = (b"\x00\x01\x014915100000001\x00\x05\x00Shop\x00"
            + bytes([ESM_CLASS_DELIVERY_RECEIPT, 0, 0]) + tlvs)
    answers: list[tuple[int, int, int]] = []
    done = trio.Event()

    def script(session: SmscSession, ev: Any) -> None:
        if isinstance(ev, BindRequest):
            session.accept_bind(ev)
            # The SMSC session has no data_sm sender: the PDU is written by hand, and its
            # sequence number registered so the answer is matched to it.
            seq = session._request(CommandId.DATA_SM)
            session.send_raw(struct.pack(">IIII", 16 + len(body), CommandId.DATA_SM, 0, seq)
                             + body)
        elif isinstance(ev, Response):
            answers.append((ev.command_id, ev.command_status, ev.sequence_number))
            done.set()

    async with pool_against(scripted_smsc(script)) as pool:
        events: list[Any] = []
        with trio.fail_after(10):
            while not events:
                events += [e for e in await pool.outcomes.receive()
                           if isinstance(e, ReceiptEvent | MoMessage)]
            await done.wait()
    (receipt,) = events
    assert isinstance(receipt, ReceiptEvent)
    assert (receipt.message_id, receipt.stat, receipt.sms_result) == ("77ab", "DELIVRD",
                                                                      "delivered")
    assert answers == [(CommandId.DATA_SM_RESP, 0, 1)]
