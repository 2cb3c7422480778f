# Recipient file parsing, normalisation, dedupe and ctn hashing. Included by _fastpath.pyx; the
# C helpers it calls (dpi_*) are declared in _fastpath.pxd (_fp_hash_c.pxi, _fp_ingest_c.pxi).
#
# The rules are specified (and explained) in dispatch/_reference/ingest.py; this file gives the
# same batches, counters and errors, faster. Layout of the work for one fed chunk:
#   1. _consume (GIL released) splits lines/CSV records, normalises phone fields and appends
#      candidates (packed number, line, 16-byte digit record) to C arrays; line errors go to a C
#      array too. Common txt lines (a valid number or blank, under 32 bytes) are decided by one
#      C loop (dpi_txt_run, SSE2); anything else takes the general path one line at a time.
#   2. _finish_run dedupes the candidates in file order against an open-addressing set of 64-bit
#      packed numbers (dpi_dedupe: prefetching slots ahead, since a big set misses the cache),
#      then SipHash-128s the survivors (AVX2, 8 at a time, when the CPU has it), writing
#      straight into the batch's array('Q')s and bytes (GIL released for both).
#   3. Only CSV builds Python objects per recipient (its variables), with the GIL.
# The first well-formed CSV record stops step 1 once so its header can be read with the GIL.

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize as _ing_bytes
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, _PyBytes_Resize
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF, Py_CLEAR
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void* op)
from cpython.unicode cimport PyUnicode_DecodeUTF8 as _ing_decode
from cpython cimport array as _ing_carray
import array as _ing_array_module

from dispatch._reference.ingest import (
    DEFAULT_PHONE_COLUMNS,
    REASONS,
    Recipient,
    RecipientBatch,
    variable_names,
)

cdef enum:
    _ING_CR = 13
    _ING_LF = 10
    _ING_QUOTE = 34
    _ING_MALFORMED = 6
    _ING_TOO_LONG_LINE = 7
    _ING_BAD_ENCODING = 8
    _ING_WAIT = -1          # record continues past the buffered data
    _ING_NEED_COLUMNS = -2  # first well-formed CSV record: read the header with the GIL
    _ING_HEADER_DIGITS = 7

# At most this many numbers are reserved from an ``expected_bytes`` hint: a 4M-slot table (32 MB
# of address space, touched page by page), whatever the hint; a bigger file grows past it.
DEF _ING_RESERVE_MAX = 3 << 20


cdef inline _ing_u64 _ing_key_word(const unsigned char* p) noexcept nogil:
    cdef _ing_u64 v = 0
    cdef int i
    for i in range(7, -1, -1):
        v = (v << 8) | p[i]
    return v


def siphash128(key, data):
    """SipHash-2-4 with 128-bit output; ``key`` is 16 bytes."""
    cdef const unsigned char[::1] k = key
    cdef const unsigned char[::1] d = data
    cdef unsigned char out[16]
    if k.shape[0] != 16:
        raise ValueError("siphash128 key must be 16 bytes")
    with nogil:
        dpi_siphash128(_ing_key_word(&k[0]), _ing_key_word(&k[8]),
                       &d[0] if d.shape[0] else <const unsigned char*>"", <size_t>d.shape[0], out)
    return _ing_bytes(<char*>out, 16)


def ctn_hash(key, str digits):
    """The keyed lookup hash of a normalised number (E.164 digits, no ``+``)."""
    return siphash128(key, digits.encode("ascii"))


def mask_number(str digits):
    """Display form that shows only the last 4 digits: ``79123454567`` -> ``*******4567``."""
    shown = 4 if len(digits) > 4 else 0
    return "*" * (len(digits) - shown) + digits[len(digits) - shown:]


cdef int _ing_set_trunk(dpi_trunk* trunk, str prefix, int national_length, str country_code) except -1:
    trunk.on = 0
    if not prefix and not country_code and not national_length:
        return 0
    if not (prefix.isdigit() and len(prefix) <= 4 and country_code.isdigit()
            and len(country_code) <= 3 and country_code[0] != "0"
            and len(prefix) < national_length <= 20):
        raise ValueError("trunk rule needs a 1-4 digit trunk_prefix, a 1-3 digit "
                         "trunk_country_code and trunk_national_length > len(prefix), <= 20")
    trunk.on = 1
    trunk.prefix_len = len(prefix)
    trunk.cc_len = len(country_code)
    trunk.national_len = national_length
    for i, ch in enumerate(prefix.encode()):
        trunk.prefix[i] = ch
    for i, ch in enumerate(country_code.encode()):
        trunk.cc[i] = ch
    return 0


def normalize_phone(text, str trunk_prefix="", int trunk_national_length=0,
                    str trunk_country_code=""):
    """Normalise one phone number by the file rules: ``(e164_digits, None)`` or ``(None, reason)``."""
    cdef dpi_trunk trunk
    cdef _ing_u64 packed = 0
    _ing_set_trunk(&trunk, trunk_prefix, trunk_national_length, trunk_country_code)
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    cdef const unsigned char* p = raw
    code = dpi_normalize(p, 0, len(raw), &trunk, &packed, NULL)
    if code:
        return None, REASONS[code - 1]
    return str(packed), None


include "_fp_ingest_parser.pxi"
