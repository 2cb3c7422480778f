"""Typed views over PDU tuples (dispatch.smpp.pdu)."""

from __future__ import annotations

import pytest

from dispatch.fastpath import impl
from dispatch.smpp.constants import CommandId
from dispatch.smpp.pdu import Pdu, SmFields, sm_message, views


def test_views_wrap_without_changing_equality() -> None:
    message = (3, b"", 5, 0, b"SENDER", 1, 1, b"79991234567", 0, 0, 0, b"", b"", 1, 0, 0, 0,
               b"hi", [(0x0204, b"\x00\x01")])
    data = impl.encode_sm_batch(CommandId.SUBMIT_SM, [message])
    pdus, _ = impl.decode_pdus(data)
    [view] = views(pdus)
    assert view == pdus[0] and not view.is_response
    fields = view.sm()
    assert isinstance(fields, SmFields)
    assert (fields.destination_addr, fields.registered_delivery, fields.tlvs) == (
        b"79991234567", 1, {0x0204: b"\x00\x01"})
    # Round trip through sm_message gives the same bytes.
    assert impl.encode_sm_batch(CommandId.SUBMIT_SM, [sm_message(3, fields)]) == data
    assert "79991234567" not in view.describe()
    assert view.describe() == "submit_sm seq=3 status=ESME_ROK"


def test_wrong_view_is_a_type_error() -> None:
    pdu = Pdu(CommandId.ENQUIRE_LINK, 0, 1, None)
    with pytest.raises(TypeError):
        pdu.sm()
    with pytest.raises(TypeError):
        pdu.bind()
    bind = views(impl.decode_pdus(impl.encode_bind(CommandId.BIND_TRANSMITTER, 1, b"s", b"p",
                                                   b"", 0x34, 0, 0, b""))[0])[0]
    assert bind.bind().interface_version == 0x34
    with pytest.raises(ValueError):
        sm_message(1, (1, 2))
