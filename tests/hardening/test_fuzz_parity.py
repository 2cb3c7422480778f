"""Hypothesis at scale over the fuzz checks (``fuzz/parity.py``): the PDU decoder, the frame
splitter, the receipt parser and the recipient parser, both implementations, on structured
and mutated inputs. Any disagreement between the Cython extension and the reference, or
between chunkings, fails; the only exceptions allowed are the decoders' own.

The size of the run comes from a hypothesis settings profile picked by an environment
variable: ``DISPATCH_HYPOTHESIS_PROFILE=ci`` (the default, a few seconds) or ``soak`` (long,
on demand: ``DISPATCH_HYPOTHESIS_PROFILE=soak .venv/bin/python -m pytest
tests/hardening/test_fuzz_parity.py``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch._reference import codec
from dispatch.fastpath import implementations
from dispatch.smpp.constants import CommandId as C
from dispatch.smpp.constants import Tlv

FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"


def _load(name: str) -> ModuleType:
    sys.path.insert(0, str(FUZZ_DIR))  # the fuzz scripts import ``parity`` as a sibling
    try:
        spec = importlib.util.spec_from_file_location(name, FUZZ_DIR / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(FUZZ_DIR))


parity = _load("parity")
seeds = _load("seeds")

settings.register_profile("ci", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.register_profile("soak", max_examples=50_000, deadline=None,
                          suppress_health_check=list(HealthCheck))
PROFILE = os.environ.get("DISPATCH_HYPOTHESIS_PROFILE", "ci")
SCALE = settings(settings.get_profile(PROFILE))

needs_extension = pytest.mark.skipif("cython" not in implementations(),
                                     reason="parity needs the extension built")

# ------------------------------------------------------------------ PDU streams

def c_octets(max_size: int) -> st.SearchStrategy[bytes]:
    """A C-octet string's value within its SMPP 3.4 size (section 4: the NUL not counted)."""
    return st.binary(max_size=max_size).map(lambda b: b.replace(b"\0", b"x"))

receipt_text = st.builds(
    lambda mid, stat, err, tail: (b"id:" + mid + b" sub:001 dlvrd:001 submit date:2401021530 "
                                  b"done date:2401021531 stat:" + stat + b" err:" + err
                                  + b" text:" + tail),
    st.sampled_from([b"0A1B2C", b"123456", b"", b"ff" * 33]),
    st.sampled_from([b"DELIVRD", b"UNDELIV", b"EXPIRED", b"ENROUTE", b"delivrd", b"??"]),
    st.sampled_from([b"000", b"0", b"xyz", b""]), st.binary(max_size=20))
tlv = st.tuples(st.sampled_from([Tlv.RECEIPTED_MESSAGE_ID, Tlv.MESSAGE_STATE,
                                 Tlv.SAR_MSG_REF_NUM, Tlv.USER_MESSAGE_REFERENCE, 0x1400]),
                st.binary(max_size=8))


@st.composite
def pdu(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["sm", "resp", "bind", "bind_resp", "header"]))
    seq = draw(st.integers(0, 0xFFFFFFFF))
    if kind == "sm":
        text = draw(st.one_of(receipt_text, st.binary(max_size=160)))
        fields = (seq, draw(c_octets(5)), draw(st.integers(0, 255)), 0, draw(c_octets(20)),
                  1, 1, draw(c_octets(20)), draw(st.sampled_from([0, 4, 0x20, 0x40, 0x44, 0xFF])), 0, 0,
                  b"", b"", 1, 0, draw(st.sampled_from([0, 3, 8, 0xF0])), 0, text,
                  draw(st.lists(tlv, max_size=3)) or None)
        return bytes(codec.encode_sm_batch(draw(st.sampled_from([C.SUBMIT_SM, C.DELIVER_SM])),
                                           [fields]))
    if kind == "resp":
        return bytes(codec.encode_message_id_resp(
            draw(st.sampled_from([C.SUBMIT_SM_RESP, C.DELIVER_SM_RESP])),
            draw(st.sampled_from([0, 0x58, 0x14, 8])), seq, draw(c_octets(64))))
    if kind == "bind":
        return bytes(codec.encode_bind(C.BIND_TRANSCEIVER, seq, draw(c_octets(15)),
                                       draw(c_octets(8)), b"", 0x34, 0, 0, b""))
    if kind == "bind_resp":
        return bytes(codec.encode_bind_resp(C.BIND_TRANSMITTER_RESP, 0, seq, draw(c_octets(15)),
                                            draw(st.sampled_from([None, 0x34]))))
    return bytes(codec.encode_header_only(
        draw(st.sampled_from([C.ENQUIRE_LINK, C.ENQUIRE_LINK_RESP, C.UNBIND, C.GENERIC_NACK,
                              0x0BADCAFE])), 0, seq))


@st.composite
def mutated(draw: st.DrawFn, parts: st.SearchStrategy[bytes]) -> bytes:
    """A valid stream with a few hostile edits: flipped bytes, cuts, inserted garbage."""
    data = bytearray(b"".join(draw(st.lists(parts, min_size=1, max_size=6))))
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        edit = draw(st.sampled_from(["flip", "cut", "insert", "length"]))
        if edit == "flip":
            data[pos] ^= draw(st.integers(1, 255))
        elif edit == "cut":
            del data[pos:pos + draw(st.integers(1, 20))]
        elif edit == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=20))
        else:  # rewrite a command_length-looking word
            data[pos:pos + 4] = draw(st.integers(0, 0xFFFFFFFF)).to_bytes(4, "big")
    return bytes(data)


cuts = st.lists(st.integers(0, 2000), max_size=4)


@needs_extension
@SCALE
@given(data=mutated(pdu()), max_len=st.sampled_from(parity.MAX_PDU_LENGTHS), cuts=cuts)
def test_pdu_decoder_parity_on_mutated_streams(data: bytes, max_len: int,
                                               cuts: list[int]) -> None:
    parity.check_pdus(data, max_len, cuts)


@needs_extension
@SCALE
@given(data=st.binary(max_size=300), max_len=st.sampled_from(parity.MAX_PDU_LENGTHS),
       cuts=cuts)
def test_pdu_decoder_parity_on_random_bytes(data: bytes, max_len: int, cuts: list[int]) -> None:
    parity.check_pdus(data, max_len, cuts)


@needs_extension
@SCALE
@given(text=st.one_of(receipt_text, st.binary(max_size=200)),
       tlvs=st.one_of(st.none(), st.dictionaries(st.sampled_from([0x001E, 0x0427, 0x0005]),
                                                 st.binary(max_size=70), max_size=3)))
def test_receipt_parser_parity(text: bytes, tlvs: dict[int, bytes] | None) -> None:
    parity.check_receipt_text(text, tlvs)


# --------------------------------------------------------------- recipient files

ATOMS = [b"79123456789", b"+7 (912) 345-67-89", b"89123456789", b"0079123456789", b"123",
         b"phone", b"msisdn", b"name", b'"', b'""', b",", b";", b"\t", b"|", b"\n", b"\r",
         b"\r\n", b" ", b"\xef\xbb\xbf", b"\xff", b"\x00", b"\xd0\x98", b"+", b"x" * 70,
         b"1234567890123456", b"\xed\xa0\x80", b"\xe2\x82\xac"]
recipient_files = st.one_of(st.lists(st.sampled_from(ATOMS), max_size=60).map(b"".join),
                            mutated(st.sampled_from(seeds.recipient_files())),
                            st.binary(max_size=200))


@needs_extension
@SCALE
@given(data=recipient_files, selector=st.integers(0, 0xFFFF), column=st.integers(0, 7),
       cuts=cuts)
def test_recipient_parser_parity(data: bytes, selector: int, column: int,
                                 cuts: list[int]) -> None:
    parity.check_recipients(data, parity.recipient_options(selector, column), cuts)


# --------------------------------------------------------------- the fuzz targets

def _seed_inputs(tmp_path: Path) -> dict[str, list[bytes]]:
    seeds.main(str(tmp_path))
    return {target: [p.read_bytes() for p in sorted((tmp_path / target).iterdir())]
            for target in ("pdu", "recipients")}


def test_seed_corpus_passes_both_checks(tmp_path: Path) -> None:
    """The inputs run-ci starts from are valid for their targets (a regression corpus)."""
    inputs = _seed_inputs(tmp_path)
    decoded = sum(parity.check_pdu_input(data) for data in inputs["pdu"])
    recipients = sum(parity.check_recipient_input(data) for data in inputs["recipients"])
    assert decoded > 30 and recipients > 15  # the seeds reach past the headers


def test_a_mismatch_is_reported() -> None:
    """The checker does catch a disagreement: feed it an implementation that differs."""
    class Broken:
        __name__ = "broken"

        def __getattr__(self, name: str) -> Any:
            return getattr(implementations()["python"], name)

        def decode_pdus(self, data: Any, max_pdu_length: int = 65536) -> Any:
            pdus, consumed = implementations()["python"].decode_pdus(data, max_pdu_length)
            return [(*p[:2], p[2] ^ 1, p[3]) for p in pdus], consumed

    stream = seeds.pdu_streams()[1]
    saved = dict(parity.IMPLS)
    parity.IMPLS["cython"] = Broken()  # type: ignore[assignment]
    try:
        with pytest.raises(parity.Mismatch, match=r"broken|cython"):
            parity.check_pdus(stream, 65536, [])
    finally:
        parity.IMPLS.clear()
        parity.IMPLS.update(saved)


@pytest.mark.slow
@needs_extension
def test_run_ci_script_runs_both_targets(tmp_path: Path) -> None:
    """fuzz/run-ci as CI calls it, two seconds a target."""
    env = {**os.environ, "FUZZ_SECONDS": "2", "PYTHON": sys.executable,
           "FUZZ_ARTIFACTS": str(tmp_path / "artifacts")}
    out = subprocess.run([str(FUZZ_DIR / "run-ci")], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("number_of_executed_units") == 2
