"""Reference recipient parsing and hashing (pure Python). See dispatch/_fastpath.pyi.

This module is the specification of the recipient-file fast path: ``dispatch._fastpath`` must
give exactly the same batches, counters and errors for any input split into any chunks.

The rules, in the order they apply to a stream:

* Bytes are UTF-8; a BOM (EF BB BF) at byte 0 of the stream is skipped. Lines end with LF,
  CRLF or CR (each counts as one line). Lines holding only spaces/tabs are blank and skipped.
* A line (a CSV record, which may span lines inside quotes) longer than ``max_line_bytes``
  (terminator excluded) is rejected as ``line_too_long`` as soon as that many bytes are seen
  without its end, and parsing resumes after the first line terminator following its start:
  nothing longer than ``max_line_bytes`` is ever buffered.
* A record holding a NUL byte or invalid UTF-8 (strict, as ``bytes.decode``) is ``bad_encoding``
  (this is what UTF-16 and cp1251 files look like).
* CSV (RFC 4180): a first line ``sep=X`` (Excel writes it; X one of ``, ; tab |``) names the
  delimiter when it is not given, and is not a record. Else the delimiter, when not given, is
  the most frequent of ``,`` ``;`` ``\\t`` in the first non-blank line, outside double quotes
  (each ``"`` toggles; ties in that order; none -> ``,``). A field is quoted when it starts
  with ``"``; ``""`` inside is one quote; quoted fields may hold delimiters and newlines. A
  quote inside an unquoted field, text after a closing quote, an unterminated quote, or a
  field count that differs from the first well-formed record's is ``malformed_row`` (such a
  row ends at the next line terminator after the fault: for an unterminated quote, the first
  one after that quote).
* The first well-formed CSV record is the header when ``has_header`` says so; when it is None
  (auto), the record is a header unless one of its fields holds 7 or more digits. The phone
  column is an index, a header name (case-insensitive), or by default the first header named like
  ``DEFAULT_PHONE_COLUMNS`` (case-insensitive, a space or ``-`` read as ``_``); a header with
  none of those names ("ФИО;Телефон" in a language not listed) leaves the choice to the first
  data record: the first of its fields with 7+ digits (else 0), as without a header. Without a
  header the default is the first field of the first record with 7+ digits (else 0).
  The other columns are the recipient's variables, named by the header, or ``col<index>``
  without one; a blank header name is ``col<index>`` too, and a repeated one gets ``_2``,
  ``_3``... (``variable_names``), so no column's values are lost under another's name.
* A phone field, trimmed of spaces/tabs, may hold digits, a leading ``+`` and the separators
  ``space - . ( )``; anything else is ``invalid_characters``; nothing at all is ``empty_phone``.
  A no-break space (U+00A0, a spreadsheet's digit grouping in many locales) counts as a space.
  A field of only digits, one ``.`` and one or more zeros (``79123456789.0``: a spreadsheet's
  number written as a float) is read without that fraction; any other ``.`` is a separator.
  Without ``+``, a leading ``00`` (international prefix) is dropped, else the national trunk rule
  applies when configured: a number of exactly ``trunk_national_length`` digits starting with
  ``trunk_prefix`` gets that prefix replaced by ``trunk_country_code`` (Russia: "8", 11, "7"). The
  rule is off by default, because the right default country depends on the deployment.
  Then fewer than 10 digits is ``too_short``, more than 15 ``too_long``, and a leading 0 (no E.164
  country code starts with 0) ``bad_country_code``.
* A valid number is packed as the integer value of its digits (at most 15 digits: < 2**50) and
  deduplicated on it; the first occurrence wins, later ones only count as duplicates.
* ctn_hash = SipHash-2-4-128(hash_key, the E.164 digits as ASCII, no ``+``).
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterator
from typing import NamedTuple

__all__ = [
    "DEFAULT_PHONE_COLUMNS",
    "REASONS",
    "Recipient",
    "RecipientBatch",
    "RecipientParser",
    "ctn_hash",
    "mask_number",
    "normalize_phone",
    "siphash128",
    "variable_names",
]

#: Reason codes of per-line errors, in the order of their numeric codes in the extension.
REASONS = (
    "invalid_characters",
    "too_short",
    "too_long",
    "bad_country_code",
    "empty_phone",
    "malformed_row",
    "line_too_long",
    "bad_encoding",
)
#: Header names recognised as the phone column (case-insensitive), when none is configured.
DEFAULT_PHONE_COLUMNS = (
    "phone", "msisdn", "number", "ctn", "destination", "destination_addr", "phone_number",
    "mobile", "tel", "telephone", "recipient", "to",
    "телефон", "тел", "номер", "номер_телефона", "мобильный", "мобильный_телефон", "абонент",
)

_MASK64 = 0xFFFFFFFFFFFFFFFF
_BOM = b"\xef\xbb\xbf"
_EOL = re.compile(rb"[\r\n]")
_CR, _LF, _QUOTE = 13, 10, 34
_SEPARATORS = frozenset(b" -.()")
_SEP_LINE = frozenset(b",;\t|")  # delimiters an Excel "sep=X" first line may name
_NBSP = "\u00a0".encode()
_MIN_DIGITS, _MAX_DIGITS = 10, 15
_HEADER_DIGITS = 7  # a field with this many digits looks like a number, not a column name


# ------------------------------------------------------------------ hashing and display

def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK64


def _sipround(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _MASK64
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _MASK64
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _MASK64
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _MASK64
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash128(key: bytes, data: bytes) -> bytes:
    """SipHash-2-4 with 128-bit output (Aumasson & Bernstein; the reference siphash.c with
    outlen 16): two little-endian 64-bit words."""
    if len(key) != 16:
        raise ValueError("siphash128 key must be 16 bytes")
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:], "little")
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D ^ 0xEE
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    n = len(data)
    full = n - n % 8
    for i in range(0, full, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = _sipround(*_sipround(v0, v1, v2, v3))
        v0 ^= m
    m = int.from_bytes(data[full:], "little") | ((n & 0xFF) << 56)
    v3 ^= m
    v0, v1, v2, v3 = _sipround(*_sipround(v0, v1, v2, v3))
    v0 ^= m
    v2 ^= 0xEE
    for _ in range(4):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    out0 = v0 ^ v1 ^ v2 ^ v3
    v1 ^= 0xDD
    for _ in range(4):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    out1 = v0 ^ v1 ^ v2 ^ v3
    return out0.to_bytes(8, "little") + out1.to_bytes(8, "little")


def ctn_hash(key: bytes, digits: str) -> bytes:
    """The keyed lookup hash of a normalised number (E.164 digits, no ``+``)."""
    return siphash128(key, digits.encode("ascii"))


def mask_number(digits: str) -> str:
    """Display form that shows only the last 4 digits: ``79123454567`` -> ``*******4567``."""
    shown = 4 if len(digits) > 4 else 0
    return "*" * (len(digits) - shown) + digits[len(digits) - shown:]


# ------------------------------------------------------------------ normalisation

def _check_trunk(trunk_prefix: str, national_length: int, country_code: str) -> None:
    if not trunk_prefix and not country_code and not national_length:
        return
    if not (trunk_prefix.isdigit() and len(trunk_prefix) <= 4 and country_code.isdigit()
            and len(country_code) <= 3 and country_code[0] != "0"
            and len(trunk_prefix) < national_length <= 20):
        raise ValueError("trunk rule needs a 1-4 digit trunk_prefix, a 1-3 digit "
                         "trunk_country_code and trunk_national_length > len(prefix), <= 20")


def _normalize(field: bytes, trunk: tuple[bytes, int, bytes] | None) -> tuple[int, int]:
    """(packed number, 0) for a valid phone field, else (0, 1 + reason index)."""
    s = field.replace(_NBSP, b" ").strip(b" \t")
    if not s:
        return 0, 1 + 4
    plus = s[0] == 43
    body = s[1:] if plus else s
    whole, dot, fraction = body.partition(b".")
    if dot and whole.isdigit() and fraction and not fraction.strip(b"0"):
        body = whole  # "79123456789.0": a float rendering, not the digits 7912345678 9 0
    digits = bytearray()
    for c in body:
        if 48 <= c <= 57:
            digits.append(c)
        elif c not in _SEPARATORS:
            return 0, 1 + 0
    if not plus:
        if digits[:2] == b"00":
            del digits[:2]
        elif trunk is not None and len(digits) == trunk[1] and digits.startswith(trunk[0]):
            digits[:len(trunk[0])] = trunk[2]
    if len(digits) < _MIN_DIGITS:
        return 0, 1 + 1
    if len(digits) > _MAX_DIGITS:
        return 0, 1 + 2
    if digits[0] == 48:
        return 0, 1 + 3
    return int(digits), 0


def normalize_phone(text: str | bytes, trunk_prefix: str = "", trunk_national_length: int = 0,
                    trunk_country_code: str = "") -> tuple[str | None, str | None]:
    """Normalise one phone number by the file rules: ``(e164_digits, None)`` or ``(None, reason)``.

    For numbers that arrive one by one (transactional requests, lookups by number)."""
    _check_trunk(trunk_prefix, trunk_national_length, trunk_country_code)
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    trunk = ((trunk_prefix.encode(), trunk_national_length, trunk_country_code.encode())
             if trunk_prefix else None)
    packed, reason = _normalize(raw, trunk)
    if reason:
        return None, REASONS[reason - 1]
    return str(packed), None


# ------------------------------------------------------------------ results

def _q_array(packed: bytes) -> array:
    out = array("Q")
    out.frombytes(packed)
    return out


class Recipient(NamedTuple):
    """One accepted recipient, as Python objects (for consumers that need them)."""

    number: str
    ctn_hash: bytes
    line_no: int
    variables: dict[str, str] | None


class RecipientBatch:
    """The recipients accepted from one chunk, stored compactly (no object per number).

    ``numbers``: packed numbers (the integer value of the E.164 digits) as ``array('Q')``;
    ``hashes``: the 16-byte ctn hashes concatenated; ``line_numbers``: ``array('Q')`` of 1-based
    source lines; ``variables``: for CSV, one tuple of strings per recipient in the order of
    ``variable_names``, else None. Both implementations build this same class.
    """

    __slots__ = ("hashes", "line_numbers", "numbers", "variable_names", "variables")

    def __init__(self, numbers: bytes | array, hashes: bytes, line_numbers: bytes | array,
                 variable_names: tuple[str, ...] = (),
                 variables: list[tuple[str, ...]] | None = None) -> None:
        self.numbers = numbers if isinstance(numbers, array) else _q_array(numbers)
        self.hashes = hashes
        self.line_numbers = (line_numbers if isinstance(line_numbers, array)
                             else _q_array(line_numbers))
        self.variable_names = variable_names
        self.variables = variables

    def __len__(self) -> int:
        return len(self.numbers)

    def number(self, index: int) -> str:
        """E.164 digits of recipient ``index`` (no ``+``)."""
        return str(self.numbers[index])

    def ctn_hash(self, index: int) -> bytes:
        return self.hashes[16 * index:16 * index + 16]

    def __iter__(self) -> Iterator[Recipient]:
        names = self.variable_names
        variables = self.variables
        for i, packed in enumerate(self.numbers):
            values = None if variables is None else dict(zip(names, variables[i], strict=True))
            yield Recipient(str(packed), self.hashes[16 * i:16 * i + 16],
                            self.line_numbers[i], values)

    def __repr__(self) -> str:
        return f"RecipientBatch({len(self)} recipients)"


class _BatchBuilder:
    def __init__(self, csv: bool) -> None:
        self.numbers = array("Q")
        self.hashes = bytearray()
        self.lines = array("Q")
        self.variables: list[tuple[str, ...]] | None = [] if csv else None

    def build(self, names: tuple[str, ...]) -> RecipientBatch:
        return RecipientBatch(self.numbers.tobytes(), bytes(self.hashes), self.lines.tobytes(),
                              names, self.variables)


# ------------------------------------------------------------------ the parser

def _find_eol(buf: bytes, pos: int, end: int) -> int:
    m = _EOL.search(buf, pos, end)
    return -1 if m is None else m.start()


def _find_eol_long(buf: bytes, pos: int, end: int) -> int:
    """_find_eol for a long span (skipping a huge line): memchr speed instead of a regex."""
    lf = buf.find(b"\n", pos, end)
    cr = buf.find(b"\r", pos, end if lf < 0 else lf)
    return cr if cr >= 0 else lf


def _count_eols(seg: bytes) -> int:
    return seg.count(b"\n") + seg.count(b"\r") - seg.count(b"\r\n")


def _bad_encoding(record: bytes) -> bool:
    if 0 in record:
        return True
    try:
        record.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _digit_count(field: bytes) -> int:
    return sum(1 for c in field if 48 <= c <= 57)


class RecipientParser:
    """Streaming recipient-file parser: ``feed`` chunks split anywhere, then ``finish``.

    Each call returns a ``RecipientBatch`` of the recipients completed by it; counters and errors
    accumulate on the parser. A configuration problem found in the file (a named phone column
    missing from the header, an index out of range) raises ValueError.

    ``expected_bytes``, when the size of the whole input is known, is only a capacity hint: the
    extension sizes its dedupe set from it (bounded) instead of growing it step by step. It
    never changes a result; the reference ignores it.
    """

    def __init__(self, hash_key: bytes, *, fmt: str = "txt", delimiter: str | None = None,
                 has_header: bool | None = None, phone_column: int | str | None = None,
                 trunk_prefix: str = "", trunk_national_length: int = 0,
                 trunk_country_code: str = "", max_line_bytes: int = 65536,
                 max_errors: int = 1000, expected_bytes: int | None = None) -> None:
        if len(hash_key) != 16:
            raise ValueError("hash_key must be 16 bytes")
        if fmt not in ("txt", "csv"):
            raise ValueError("fmt must be 'txt' or 'csv'")
        if delimiter is not None and delimiter not in (",", ";", "\t"):
            raise ValueError("delimiter must be ',', ';' or '\\t'")
        if max_line_bytes < 16 or max_errors < 0:
            raise ValueError("max_line_bytes must be >= 16 and max_errors >= 0")
        if isinstance(phone_column, int) and phone_column < 0:
            raise ValueError("phone_column index must be >= 0")
        _check_trunk(trunk_prefix, trunk_national_length, trunk_country_code)
        self._key = bytes(hash_key)
        self._csv = fmt == "csv"
        self._delim = None if delimiter is None else ord(delimiter)
        self._has_header = has_header
        self._phone_column = phone_column
        self._trunk = ((trunk_prefix.encode(), trunk_national_length, trunk_country_code.encode())
                       if trunk_prefix else None)
        self._max_line = max_line_bytes
        self._max_errors = max_errors
        self._carry = b""
        self._at_start = True
        self._pending_cr = False
        self._skipping = False
        self._finished = False
        self._seen: set[int] = set()
        self._phone_index = -1  # CSV: resolved on the first well-formed record
        self._field_count = 0
        self.header: tuple[str, ...] | None = None
        self.variable_names: tuple[str, ...] = ()
        self.bytes_total = 0
        self.lines = 0
        self.valid = 0
        self.invalid = 0
        self.duplicates = 0
        self.errors: list[tuple[int, str]] = []
        self.error_counts: dict[str, int] = {}

    @property
    def delimiter(self) -> str | None:
        """The CSV delimiter in use (None until detected, and for txt)."""
        return None if self._delim is None or not self._csv else chr(self._delim)

    @property
    def phone_column_index(self) -> int | None:
        return self._phone_index if self._phone_index >= 0 else None

    def feed(self, data: bytes | bytearray | memoryview) -> RecipientBatch:
        if self._finished:
            raise ValueError("parser already finished")
        chunk = bytes(data)
        self.bytes_total += len(chunk)
        return self._run(self._carry + chunk if self._carry else chunk, eof=False)

    def finish(self) -> RecipientBatch:
        if self._finished:
            raise ValueError("parser already finished")
        batch = self._run(self._carry, eof=True)
        self._finished = True
        return batch

    # -- internals

    def _run(self, buf: bytes, eof: bool) -> RecipientBatch:
        out = _BatchBuilder(self._csv)
        pos = self._consume(buf, eof, out)
        self._carry = buf[pos:]
        return out.build(self.variable_names)

    def _error(self, line_no: int, code: int) -> None:
        reason = REASONS[code - 1]
        self.invalid += 1
        self.error_counts[reason] = self.error_counts.get(reason, 0) + 1
        if len(self.errors) < self._max_errors:
            self.errors.append((line_no, reason))

    def _after_eol(self, buf: bytes, t: int) -> int:
        """Position after the terminator at ``t``; counts the line."""
        self.lines += 1
        if buf[t] == _CR:
            if t + 1 < len(buf):
                return t + 2 if buf[t + 1] == _LF else t + 1
            self._pending_cr = True
        return t + 1

    def _consume(self, buf: bytes, eof: bool, out: _BatchBuilder) -> int:
        pos, end = 0, len(buf)
        if self._pending_cr and end:
            self._pending_cr = False
            if buf[0] == _LF:
                pos = 1
        if self._at_start:
            if end < 3 and _BOM.startswith(buf) and not eof:
                return 0
            self._at_start = False
            if buf.startswith(_BOM):
                pos = 3
        max_line = self._max_line
        while True:
            if self._skipping:
                t = _find_eol_long(buf, pos, end)
                if t < 0:
                    if eof:
                        self.lines += 1
                        self._skipping = False
                    return end
                self._skipping = False
                pos = self._after_eol(buf, t)
                continue
            if pos >= end:
                return pos
            t = _find_eol(buf, pos, min(end, pos + max_line + 1))
            if t < 0:
                if end - pos > max_line:
                    self._error(self.lines + 1, 7)
                    self._skipping = True
                    continue
                if not eof:
                    return pos
                t = end
            line = buf[pos:t]
            if not line.strip(b" \t"):
                if t == end:
                    self.lines += 1
                    return end
                pos = self._after_eol(buf, t)
                continue
            if not self._csv:
                self._record_txt(line, out)
                rec_end = t
            else:
                rec_end = self._record_csv(buf, pos, t, eof, out)
                if rec_end < 0:
                    return pos  # an open quoted field: wait for more
            if rec_end == end:  # the last line (its terminator, if any, counted inside)
                if buf[end - 1] not in (_CR, _LF):
                    self.lines += 1
                return end
            pos = self._after_eol(buf, rec_end)

    def _accept(self, line_no: int, field: bytes, out: _BatchBuilder) -> bool:
        packed, reason = _normalize(field, self._trunk)
        if reason:
            self._error(line_no, reason)
            return False
        if packed in self._seen:
            self.duplicates += 1
            return False
        self._seen.add(packed)
        self.valid += 1
        out.numbers.append(packed)
        out.hashes += siphash128(self._key, str(packed).encode())
        out.lines.append(line_no)
        return True

    def _record_txt(self, line: bytes, out: _BatchBuilder) -> None:
        line_no = self.lines + 1
        if _bad_encoding(line):
            self._error(line_no, 8)
        else:
            self._accept(line_no, line, out)

    def _record_csv(self, buf: bytes, pos: int, t: int, eof: bool, out: _BatchBuilder) -> int:
        """Parse the record starting at ``pos`` (its first line ends at ``t``); return where
        it ends, or -1 when it continues past the buffered data."""
        line_no = self.lines + 1
        end = len(buf)
        if self._delim is None:
            if t - pos == 5 and buf[pos:pos + 4].lower() == b"sep=" and buf[pos + 4] in _SEP_LINE:
                self._delim = buf[pos + 4]  # Excel's "sep=;" line names the delimiter
                return t
            line = b"".join(buf[pos:t].split(b'"')[::2])  # outside quotes: quoted text is data
            counts = [line.count(b","), line.count(b";"), line.count(b"\t")]
            best = max(counts)
            self._delim = (44, 59, 9)[counts.index(best)] if best else 44
        if _QUOTE not in buf[pos:t]:
            rec_end, fields, malformed = t, buf[pos:t].split(bytes((self._delim,))), False
        else:
            scanned = _scan_quoted(buf, pos, self._delim, eof)
            if scanned is None:
                if end - pos > self._max_line:
                    self._error(line_no, 7)
                    return t
                return -1
            rec_end, fields, malformed = scanned
            if rec_end - pos > self._max_line:
                self._error(line_no, 7)
                return t
            self.lines += _count_eols(buf[pos:rec_end])
        if _bad_encoding(buf[pos:rec_end]):
            self._error(line_no, 8)
        elif malformed:
            self._error(line_no, 6)
        elif self._phone_index < 0:
            if self._setup_columns(fields):
                return rec_end
            self._csv_fields(line_no, fields, out)
        else:
            self._csv_fields(line_no, fields, out)
        return rec_end

    def _csv_fields(self, line_no: int, fields: list[bytes], out: _BatchBuilder) -> None:
        if len(fields) != self._field_count:
            self._error(line_no, 6)
            return
        phone = self._phone_index
        if self._accept(line_no, fields[phone], out):
            assert out.variables is not None
            out.variables.append(tuple(f.decode("utf-8") for i, f in enumerate(fields)
                                       if i != phone))

    def _setup_columns(self, fields: list[bytes]) -> bool:
        """Resolve header and phone column from the first well-formed record; True if it was
        the header (consumed)."""
        if self.header is not None:  # the header named no phone column: this record picks it
            if len(fields) == self._field_count:  # (else it is malformed, and the next one)
                self._set_columns(list(self.header), next(
                    (i for i, f in enumerate(fields) if _digit_count(f) >= _HEADER_DIGITS), 0))
            return False
        has_header = self._has_header
        if has_header is None:
            has_header = all(_digit_count(f) < _HEADER_DIGITS for f in fields)
        names = ([f.decode("utf-8").strip(" \t") for f in fields] if has_header
                 else [f"col{i}" for i in range(len(fields))])
        wanted = self._phone_column
        if isinstance(wanted, int):
            if wanted >= len(fields):
                raise ValueError(f"phone column {wanted} is out of range: the file has "
                                 f"{len(fields)} columns")
            index = wanted
        elif isinstance(wanted, str):
            if not has_header:
                raise ValueError(f"phone column {wanted!r} given by name but the file has no header")
            folded = [n.casefold() for n in names]
            if wanted.strip().casefold() not in folded:
                raise ValueError(f"phone column {wanted!r} is not in the header")
            index = folded.index(wanted.strip().casefold())
        elif has_header:
            # "Phone Number", "phone-number" and "phone_number" name one column
            folded = [n.casefold().replace(" ", "_").replace("-", "_") for n in names]
            found = next((i for i, n in enumerate(folded) if n in DEFAULT_PHONE_COLUMNS), None)
            self.header = tuple(names)
            if found is None:  # no known name: the first data record decides (see above)
                self._field_count = len(fields)
                return True
            index = found
        else:
            index = next((i for i, f in enumerate(fields) if _digit_count(f) >= _HEADER_DIGITS), 0)
        self._set_columns(names, index)
        if has_header:
            self.header = tuple(names)
        return has_header

    def _set_columns(self, names: list[str], index: int) -> None:
        self._phone_index = index
        self._field_count = len(names)
        self.variable_names = variable_names(names, index)


def variable_names(names: list[str], phone: int) -> tuple[str, ...]:
    """The variables' names: every column's but the phone's, each unique (see the module
    doc). Both implementations call this one function."""
    out: list[str] = []
    taken: set[str] = set()
    for i, name in enumerate(names):
        if i == phone:
            continue
        base = name or f"col{i}"
        unique, k = base, 1
        while unique in taken:
            k += 1
            unique = f"{base}_{k}"
        taken.add(unique)
        out.append(unique)
    return tuple(out)


def _scan_quoted(buf: bytes, pos: int, delim: int,
                 eof: bool) -> tuple[int, list[bytes], bool] | None:
    """RFC 4180 scan of the record at ``pos``: (end, fields, malformed), or None if incomplete.

    A malformed record ends at the first line terminator after the fault."""
    end = len(buf)
    fields: list[bytes] = []
    i = pos
    while True:
        if i < end and buf[i] == _QUOTE:
            parts: list[bytes] = []
            start = i + 1
            while True:
                q = buf.find(b'"', start, end)
                if q < 0:  # unterminated: malformed, up to the terminator after the quote
                    if not eof:
                        return None
                    e = _find_eol(buf, i + 1, end)
                    return (end if e < 0 else e), fields, True
                if q + 1 < end and buf[q + 1] == _QUOTE:
                    parts.append(buf[start:q + 1])
                    start = q + 2
                    continue
                if q + 1 >= end and not eof:
                    return None
                parts.append(buf[start:q])
                i = q + 1
                break
            fields.append(b"".join(parts))
            if i >= end:
                return end, fields, False
            c = buf[i]
            if c == delim:
                i += 1
                continue
            if c in (_CR, _LF):
                return i, fields, False
        else:
            e = _find_eol(buf, i, end)
            stop = end if e < 0 else e
            d = buf.find(bytes((delim,)), i, stop)
            j = stop if d < 0 else d
            if _QUOTE not in buf[i:j]:
                fields.append(buf[i:j])
                if d >= 0:
                    i = d + 1
                    continue
                if e < 0 and not eof:
                    return None
                return stop, fields, False
        e = _find_eol(buf, i, end)  # malformed: the row ends at the next terminator
        if e < 0:
            return (end, fields, True) if eof else None
        return e, fields, True
