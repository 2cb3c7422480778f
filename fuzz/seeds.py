#!/usr/bin/env python3
"""Write the seed corpus of the fuzz targets: well-formed PDU streams and recipient files
for the fuzzer to mutate (random bytes alone rarely get past a PDU header).

    .venv/bin/python fuzz/seeds.py DIRECTORY      # writes DIRECTORY/pdu/* and recipients/*
"""

from __future__ import annotations

import sys
from pathlib import Path

from parity import join_header

from dispatch._reference import codec
from dispatch.smpp.constants import CommandId as C
from dispatch.smpp.constants import Tlv


def _sm(seq: int, text: bytes, esm_class: int = 0, tlvs: object = None) -> tuple[object, ...]:
    return (seq, b"", 5, 0, b"Shop", 1, 1, b"4915112345678", esm_class, 0, 0, b"", b"", 1, 0,
            0, 0, text, tlvs)


RECEIPT = (b"id:0A1B2C sub:001 dlvrd:001 submit date:2401021530 done date:2401021531 "
           b"stat:DELIVRD err:000 text:hello")


def pdu_streams() -> list[bytes]:
    receipt = codec.encode_sm_batch(C.DELIVER_SM, [_sm(
        9, RECEIPT, 0x04, [(Tlv.RECEIPTED_MESSAGE_ID, b"0A1B2C\0"), (Tlv.MESSAGE_STATE, b"\2")])])
    submits = codec.encode_sm_batch(C.SUBMIT_SM, [_sm(i, b"x" * i) for i in range(1, 4)])
    resps = codec.encode_message_id_resp_batch(C.SUBMIT_SM_RESP,
                                               [(0, 1, b"0A1B2C"), (0x58, 2, b""), (0, 3, b"7")])
    bind = codec.encode_bind(C.BIND_TRANSCEIVER, 1, b"dispatch", b"secret", b"", 0x34, 0, 0, b"")
    bind_resp = codec.encode_bind_resp(C.BIND_TRANSCEIVER_RESP, 0, 1, b"smsc", 0x34)
    nack = codec.encode_header_only(C.GENERIC_NACK, 3, 7)
    link = codec.encode_header_only(C.ENQUIRE_LINK, 0, 8)
    udh = codec.encode_sm_batch(C.SUBMIT_SM, [_sm(5, b"\x05\x00\x03\x2a\x02\x01part", 0x40)])
    # a one-letter lower-case stat: upper-cased by the parser (it once did that in place,
    # in CPython's shared single-byte object)
    short_stat = codec.encode_sm_batch(C.DELIVER_SM, [_sm(
        10, b"id:7 sub:001 dlvrd:001 submit date:2401021530 done date:2401021531 stat:t err:0",
        0x04)])
    return [receipt, submits, resps, bind, bind_resp, nack + link, udh, short_stat + udh,
            receipt + submits + resps, receipt[:-3], b"\x00\x00\x00\x0f" + link[4:],
            link + b"\xff" * 20, resps + receipt[: len(receipt) // 2]]


def recipient_files() -> list[bytes]:
    return [
        b"79123456789\n+7 (912) 345-67-89\r\n89123456789\n123\n\n79123456789\n",
        b"\xef\xbb\xbfphone,name\n+79123456789,Ann\n\"+7 912 345 67 80\",\"B, b\"\n",
        b"msisdn;city\r\n79123456781;Moscow\r\n79123456782;\"St \"\"P\"\"\"\r\n",
        b"name\tphone\nA\t0079123456783\nB\tnot a number\n",
        b"\xff\xfe7\x009\x00\n" + b"9" * 40 + b"\n\x00\n",
        # float renderings, no-break spaces, an unknown header, a quote never closed
        b"79123456789.0\n\xc2\xa0+7\xc2\xa0912\xc2\xa0345-67-89\n7912345678.5\n\xc2\xa0\n",
        b"Klient;Kontakt\nAnn;79123456789.00\nBob;\"79\xc2\xa0123 456 780\nEve;x\n",
    ]


def main(directory: str) -> None:
    root = Path(directory)
    (root / "pdu").mkdir(parents=True, exist_ok=True)
    (root / "recipients").mkdir(parents=True, exist_ok=True)
    for i, stream in enumerate(pdu_streams()):
        (root / "pdu" / f"seed-{i}").write_bytes(join_header(bytes([3, 0]), [], stream))
        (root / "pdu" / f"seed-{i}-cut").write_bytes(
            join_header(bytes([3, 0]), [len(stream) // 3, len(stream) // 2], stream))
    (root / "pdu" / "seed-receipt-text").write_bytes(
        join_header(bytes([0, 3]), [], b"\x06" + b"0A1B2C" + b"\x02" + RECEIPT))
    for i, text in enumerate(recipient_files()):
        for selector in (0x0008, 0x0009, 0x0049, 0x0289, 0x0001):
            (root / "recipients" / f"seed-{i}-{selector:04x}").write_bytes(
                join_header(selector.to_bytes(2, "big") + b"\x01", [len(text) // 2], text))


if __name__ == "__main__":
    main(sys.argv[1])
