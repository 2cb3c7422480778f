# SMPP PDU encoding and decoding. Included by _fastpath.pyx.
#
# The C twin of dispatch/_reference/codec.py: same names, same tuples, same bytes, same errors
# (parity is tested on generated PDUs and on random garbage). The decisions (framing errors,
# trailing octets, bodies left out of error responses) are written down in the reference's
# docstring; section numbers cite SMPP 3.4. Module-level names here start with _cd so they cannot
# collide with the ingest include in the same module.

from libc.string cimport memchr, memcpy, memcmp
from libc.stdlib cimport malloc, realloc, free
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM, PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.object cimport PyObject
from cpython.long cimport PyLong_AsLongAndOverflow, PyLong_AsLongLongAndOverflow
from cpython.exc cimport PyErr_Occurred
from cpython.dict cimport PyDict_SetItem, PyDict_GetItem

from dispatch.smpp.errors import PduError as _cd_PduError

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void* op)

# Why untrack: a batch of 1000 receipts makes ~5000 tuples, and freshly built tuples are
# tracked by the cyclic GC, which then walks them in every generation-0 collection (that cost
# 3x in the receipt benchmark with GC on). Our tuples hold only bytes, ints, None and
# untracked dicts of bytes, so they can never be part of a cycle; CPython untracks such tuples
# itself (_PyTuple_MaybeUntrack), only later.
cdef inline void _cd_untrack(object o) noexcept:
    PyObject_GC_UnTrack(<void*>o)

# Command ids as ready-made int objects (no allocation per decoded PDU): every id of section
# 5.1.2.1 is below 0x200, with or without the response bit 0x80000000.
_cd_ID_OBJECTS = tuple([i for i in range(0x200)] + [0x80000000 | i for i in range(0x200)])


cdef inline object _cd_id_object(unsigned int command_id):
    if command_id & 0x7FFFFE00:
        return command_id
    return <object>PyTuple_GET_ITEM(_cd_ID_OBJECTS,
                                    (command_id & 0x1FF) | (0x200 if command_id >> 31 else 0))
_cd_TAG_OBJECTS = tuple(range(0x0430))  # TLV tags of SMPP 3.4 section 5.3.2 are below 0x0430

# Command ids (section 5.1.2.1) and statuses (5.1.3) used by the codec.
DEF _CD_SUBMIT_SM = 0x00000004
DEF _CD_DELIVER_SM = 0x00000005
DEF _CD_SUBMIT_SM_RESP = 0x80000004
DEF _CD_DELIVER_SM_RESP = 0x80000005
DEF _CD_DATA_SM_RESP = 0x80000103
DEF _CD_RINVMSGLEN = 0x01
DEF _CD_RINVCMDLEN = 0x02
DEF _CD_RINVSRCADR = 0x0A
DEF _CD_RINVDSTADR = 0x0B
DEF _CD_RINVOPTPARSTREAM = 0xC0
DEF _CD_DEFAULT_MAX_PDU = 65536
# Worst case of the mandatory part of a submit_sm/deliver_sm: 16 + 6 + 2 + 21 + 2 + 21 + 3
# + 17 + 17 + 5 + 254 = 364 octets; TLVs are reserved one by one.
DEF _CD_SM_MANDATORY_MAX = 364


class _CdBodyError(Exception):
    """Internal: a body field did not parse; becomes PduError with the header's numbers."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


cdef inline unsigned int _cd_u32(const unsigned char* p) noexcept nogil:
    return ((<unsigned int>p[0]) << 24) | ((<unsigned int>p[1]) << 16) | \
           ((<unsigned int>p[2]) << 8) | (<unsigned int>p[3])


cdef inline void _cd_put_u32(unsigned char* p, unsigned int v) noexcept nogil:
    p[0] = (v >> 24) & 0xFF
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF


# ------------------------------------------------------------------------------ decoding

cdef object _cd_cstring(const unsigned char* d, Py_ssize_t* pos, Py_ssize_t end,
                        Py_ssize_t max_len, str name, int status):
    """A C-octet string of at most max_len octets including its NUL (section 3.1)."""
    cdef Py_ssize_t p = pos[0]
    cdef Py_ssize_t limit = p + max_len
    if limit > end:
        limit = end
    cdef const void* nul = NULL
    if limit > p:
        nul = memchr(d + p, 0, <size_t>(limit - p))
    if nul == NULL:
        if limit < end:
            raise _CdBodyError(f"{name} longer than {max_len - 1} octets", status)
        raise _CdBodyError(f"{name} has no NUL terminator inside the PDU", status)
    cdef Py_ssize_t n = <const unsigned char*>nul - (d + p)
    pos[0] = p + n + 1
    return PyBytes_FromStringAndSize(<const char*>(d + p), n)


cdef dict _cd_tlvs(const unsigned char* d, Py_ssize_t pos, Py_ssize_t end):
    """Optional parameters: tag (2), length (2), value (sections 3.2.4, 5.3.1). Last one wins."""
    cdef dict out = {}
    cdef unsigned int tag, length
    while pos < end:
        if end - pos < 4:
            raise _CdBodyError("truncated TLV header", _CD_RINVOPTPARSTREAM)
        tag = ((<unsigned int>d[pos]) << 8) | d[pos + 1]
        length = ((<unsigned int>d[pos + 2]) << 8) | d[pos + 3]
        pos += 4
        if length > end - pos:
            raise _CdBodyError(f"TLV 0x{tag:04X} value runs past the PDU", _CD_RINVOPTPARSTREAM)
        if tag < 0x0430:
            key = <object>PyTuple_GET_ITEM(_cd_TAG_OBJECTS, tag)
        else:
            key = tag
        PyDict_SetItem(out, key, PyBytes_FromStringAndSize(<const char*>(d + pos), length))
        pos += length
    return out


cdef inline void _cd_set(tuple t, Py_ssize_t i, object v):
    Py_INCREF(v)
    PyTuple_SET_ITEM(t, i, v)


cdef struct _CdSm:
    # Offsets into the buffer of one submit_sm / deliver_sm, found by _cd_sm_scan: C-strings as
    # (start, length) without the NUL; tlv_start..tlv_end is the validated optional part.
    Py_ssize_t service_type, service_type_len
    Py_ssize_t source_addr, source_addr_len
    Py_ssize_t destination_addr, destination_addr_len
    Py_ssize_t schedule, schedule_len
    Py_ssize_t validity, validity_len
    Py_ssize_t short_message, sm_length
    Py_ssize_t tlv_start, tlv_end
    Py_ssize_t src_ton, dst_ton, esm_class, registered  # offsets of the one-octet groups


cdef int _cd_cspan(const unsigned char* d, Py_ssize_t* pos, Py_ssize_t end, Py_ssize_t max_len,
                   str name, int status, Py_ssize_t* start, Py_ssize_t* length) except -1:
    """Locate a C-octet string like _cd_cstring (same errors) without building an object."""
    cdef Py_ssize_t p = pos[0]
    cdef Py_ssize_t limit = p + max_len
    if limit > end:
        limit = end
    cdef const void* nul = NULL
    if limit > p:
        nul = memchr(d + p, 0, <size_t>(limit - p))
    if nul == NULL:
        if limit < end:
            raise _CdBodyError(f"{name} longer than {max_len - 1} octets", status)
        raise _CdBodyError(f"{name} has no NUL terminator inside the PDU", status)
    start[0] = p
    length[0] = <const unsigned char*>nul - (d + p)
    pos[0] = p + length[0] + 1
    return 0


cdef int _cd_tlv_check(const unsigned char* d, Py_ssize_t pos, Py_ssize_t end) except -1:
    """Validate the TLV part exactly as _cd_tlvs would (same errors), building nothing."""
    cdef unsigned int tag, length
    while pos < end:
        if end - pos < 4:
            raise _CdBodyError("truncated TLV header", _CD_RINVOPTPARSTREAM)
        tag = ((<unsigned int>d[pos]) << 8) | d[pos + 1]
        length = ((<unsigned int>d[pos + 2]) << 8) | d[pos + 3]
        pos += 4
        if length > end - pos:
            raise _CdBodyError(f"TLV 0x{tag:04X} value runs past the PDU", _CD_RINVOPTPARSTREAM)
        pos += length
    return 0


cdef int _cd_sm_scan(const unsigned char* d, Py_ssize_t pos, Py_ssize_t end,
                     _CdSm* f) except -1:
    """submit_sm / deliver_sm mandatory fields in spec order (sections 4.4.1, 4.6.1) + TLVs:
    find and validate every field, build no object."""
    _cd_cspan(d, &pos, end, 6, "service_type", _CD_RINVCMDLEN, &f.service_type,
              &f.service_type_len)
    if end - pos < 2:
        raise _CdBodyError("truncated source_addr_ton/npi", _CD_RINVCMDLEN)
    f.src_ton = pos
    pos += 2
    _cd_cspan(d, &pos, end, 21, "source_addr", _CD_RINVSRCADR, &f.source_addr,
              &f.source_addr_len)
    if end - pos < 2:
        raise _CdBodyError("truncated dest_addr_ton/npi", _CD_RINVCMDLEN)
    f.dst_ton = pos
    pos += 2
    _cd_cspan(d, &pos, end, 21, "destination_addr", _CD_RINVDSTADR, &f.destination_addr,
              &f.destination_addr_len)
    if end - pos < 3:
        raise _CdBodyError("truncated esm_class/protocol_id/priority_flag", _CD_RINVCMDLEN)
    f.esm_class = pos
    pos += 3
    _cd_cspan(d, &pos, end, 17, "schedule_delivery_time", _CD_RINVCMDLEN, &f.schedule,
              &f.schedule_len)
    _cd_cspan(d, &pos, end, 17, "validity_period", _CD_RINVCMDLEN, &f.validity,
              &f.validity_len)
    if end - pos < 5:
        raise _CdBodyError("truncated registered_delivery..sm_length", _CD_RINVCMDLEN)
    f.registered = pos
    f.sm_length = d[pos + 4]
    pos += 5
    if f.sm_length > end - pos:
        raise _CdBodyError("short_message runs past the PDU", _CD_RINVMSGLEN)
    f.short_message = pos
    f.tlv_start = pos + f.sm_length
    f.tlv_end = end
    _cd_tlv_check(d, f.tlv_start, end)
    return 0


# Small ints as ready-made objects for the one-octet fields (cheaper than PyLong_FromLong).
_cd_OCTETS = tuple(range(256))


cdef inline object _cd_octet(unsigned char v):
    return <object>PyTuple_GET_ITEM(_cd_OCTETS, v)


cdef inline object _cd_span(const unsigned char* d, Py_ssize_t start, Py_ssize_t length):
    return PyBytes_FromStringAndSize(<const char*>(d + start), length)


cdef tuple _cd_sm_body(const unsigned char* d, Py_ssize_t pos, Py_ssize_t end):
    """The SmFields 18-tuple (see the .pyi) of a submit_sm / deliver_sm."""
    cdef _CdSm f
    _cd_sm_scan(d, pos, end, &f)
    cdef tuple t = PyTuple_New(18)
    _cd_set(t, 0, _cd_span(d, f.service_type, f.service_type_len))
    _cd_set(t, 1, _cd_octet(d[f.src_ton]))
    _cd_set(t, 2, _cd_octet(d[f.src_ton + 1]))
    _cd_set(t, 3, _cd_span(d, f.source_addr, f.source_addr_len))
    _cd_set(t, 4, _cd_octet(d[f.dst_ton]))
    _cd_set(t, 5, _cd_octet(d[f.dst_ton + 1]))
    _cd_set(t, 6, _cd_span(d, f.destination_addr, f.destination_addr_len))
    _cd_set(t, 7, _cd_octet(d[f.esm_class]))
    _cd_set(t, 8, _cd_octet(d[f.esm_class + 1]))
    _cd_set(t, 9, _cd_octet(d[f.esm_class + 2]))
    _cd_set(t, 10, _cd_span(d, f.schedule, f.schedule_len))
    _cd_set(t, 11, _cd_span(d, f.validity, f.validity_len))
    _cd_set(t, 12, _cd_octet(d[f.registered]))
    _cd_set(t, 13, _cd_octet(d[f.registered + 1]))
    _cd_set(t, 14, _cd_octet(d[f.registered + 2]))
    _cd_set(t, 15, _cd_octet(d[f.registered + 3]))
    _cd_set(t, 16, _cd_span(d, f.short_message, f.sm_length))
    _cd_set(t, 17, _cd_tlvs(d, f.tlv_start, f.tlv_end))
    _cd_untrack(t)
    return t


cdef tuple _cd_bind_body(const unsigned char* d, Py_ssize_t pos, Py_ssize_t end):
    """bind_transmitter/receiver/transceiver (section 4.1.1)."""
    system_id = _cd_cstring(d, &pos, end, 16, "system_id", _CD_RINVCMDLEN)
    password = _cd_cstring(d, &pos, end, 9, "password", _CD_RINVCMDLEN)
    system_type = _cd_cstring(d, &pos, end, 13, "system_type", _CD_RINVCMDLEN)
    if end - pos < 3:
        raise _CdBodyError("truncated interface_version/addr_ton/addr_npi", _CD_RINVCMDLEN)
    cdef int version = d[pos]
    cdef int ton = d[pos + 1]
    cdef int npi = d[pos + 2]
    pos += 3
    address_range = _cd_cstring(d, &pos, end, 41, "address_range", _CD_RINVCMDLEN)
    return (system_id, password, system_type, version, ton, npi, address_range)


cdef object _cd_body(unsigned int command_id, const unsigned char* d, Py_ssize_t pos,
                     Py_ssize_t end):
    if command_id == _CD_SUBMIT_SM_RESP or command_id == _CD_DELIVER_SM_RESP \
            or command_id == _CD_DATA_SM_RESP:
        if pos == end:
            return b""
        return _cd_cstring(d, &pos, end, 65, "message_id", _CD_RINVCMDLEN)
    if command_id == 0x80000000 or command_id == 0x00000015 or command_id == 0x80000015 \
            or command_id == 0x00000006 or command_id == 0x80000006:
        return None
    if command_id == _CD_SUBMIT_SM or command_id == _CD_DELIVER_SM:
        return _cd_sm_body(d, pos, end)
    if command_id == 0x80000001 or command_id == 0x80000002 or command_id == 0x80000009:
        if pos == end:
            return (b"", {})
        system_id = _cd_cstring(d, &pos, end, 16, "system_id", _CD_RINVCMDLEN)
        return (system_id, _cd_tlvs(d, pos, end))
    if command_id == 0x00000001 or command_id == 0x00000002 or command_id == 0x00000009:
        return _cd_bind_body(d, pos, end)
    return PyBytes_FromStringAndSize(<const char*>(d + pos), end - pos)


def decode_pdus(data, Py_ssize_t max_pdu_length=_CD_DEFAULT_MAX_PDU):
    """Decode every complete PDU at the start of ``data``; return them and the bytes consumed.

    Frame splitter and batch decoder in one pass (SMPP 3.4 section 3.2).
    """
    cdef const unsigned char[::1] view
    cdef const unsigned char* d
    cdef bytes as_bytes
    if type(data) is bytes:
        as_bytes = <bytes>data
        d = <const unsigned char*>PyBytes_AS_STRING(as_bytes)
        total = PyBytes_GET_SIZE(as_bytes)
    else:
        view = memoryview(data).cast("B")
        total = view.shape[0]
        d = &view[0] if total > 0 else <const unsigned char*>""
    cdef Py_ssize_t total_len = total
    cdef list pdus = []
    cdef Py_ssize_t pos = 0
    cdef unsigned int length, command_id, status, sequence
    cdef object t
    cdef const void* nul
    while total_len - pos >= 4:
        length = _cd_u32(d + pos)
        if length < 16 or <Py_ssize_t>length > max_pdu_length:
            if pdus:
                break
            cid = seq = None
            if total_len - pos >= 16:
                cid = _cd_u32(d + pos + 4)
                seq = _cd_u32(d + pos + 12)
            raise _cd_PduError(
                f"command_length {length} outside 16..{max_pdu_length}",
                sequence_number=seq, command_id=cid, frame_length=None,
                command_status=_CD_RINVCMDLEN)
        if total_len - pos < length:
            break
        command_id = _cd_u32(d + pos + 4)
        status = _cd_u32(d + pos + 8)
        sequence = _cd_u32(d + pos + 12)
        body = None
        if (command_id == _CD_SUBMIT_SM_RESP or command_id == _CD_DELIVER_SM_RESP) \
                and length > 16:
            # The hot response (section 4.4.2): a message_id C-string, found inline; anything
            # unusual falls through to the general decoder for the exact error.
            nul = memchr(d + pos + 16, 0, <size_t>(length - 16 if length < 16 + 65 else 65))
            if nul != NULL:
                body = PyBytes_FromStringAndSize(<const char*>(d + pos + 16),
                                                 <const unsigned char*>nul - (d + pos + 16))
        try:
            if body is None:
                body = _cd_body(command_id, d, pos + 16, pos + length)
        except _CdBodyError as exc:
            if pdus:
                break
            raise _cd_PduError(
                f"malformed PDU 0x{command_id:08X} seq {sequence}: {exc}",
                sequence_number=sequence, command_id=command_id, frame_length=length,
                command_status=exc.status) from None
        t = PyTuple_New(4)
        _cd_set(t, 0, _cd_id_object(command_id))
        _cd_set(t, 1, _cd_octet(status) if status < 256 else status)
        _cd_set(t, 2, sequence)
        _cd_set(t, 3, body)
        _cd_untrack(t)
        pdus.append(t)
        pos += length
    return pdus, pos


# ------------------------------------------------------------------------------ encoding

cdef struct _CdBuf:
    unsigned char* data
    Py_ssize_t length
    Py_ssize_t capacity


cdef int _cd_reserve(_CdBuf* b, Py_ssize_t extra) except -1:
    """Make room for ``extra`` more octets (amortised doubling)."""
    cdef Py_ssize_t need = b.length + extra
    cdef Py_ssize_t cap
    cdef unsigned char* grown
    if need <= b.capacity:
        return 0
    cap = b.capacity * 2 if b.capacity else 4096
    while cap < need:
        cap *= 2
    grown = <unsigned char*>realloc(b.data, <size_t>cap)
    if grown == NULL:
        raise MemoryError()
    b.data = grown
    b.capacity = cap
    return 0


cdef inline int _cd_byte(_CdBuf* b, object value, str name) except -1:
    cdef int overflow = 0
    cdef long v = PyLong_AsLongAndOverflow(value, &overflow)
    if v == -1 and PyErr_Occurred():
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if overflow or v < 0 or v > 0xFF:
        raise ValueError(f"{name} must be 0..255, got {value}")
    b.data[b.length] = <unsigned char>v
    b.length += 1
    return 0


cdef inline unsigned int _cd_check_u32(object value, str name) except? 0xFFFFFFFF:
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if v == -1 and PyErr_Occurred():
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if overflow or v < 0 or v > 0xFFFFFFFF:
        raise ValueError(f"{name} must be 0..0xFFFFFFFF, got {value}")
    return <unsigned int>v


cdef int _cd_cstr(_CdBuf* b, object value, Py_ssize_t max_len, str name) except -1:
    """Write a C-octet string after checking its SMPP maximum (section 3.1); room is reserved."""
    cdef const unsigned char[::1] view
    cdef const unsigned char* p
    cdef Py_ssize_t n
    if type(value) is bytes:
        p = <const unsigned char*>PyBytes_AS_STRING(value)
        n = PyBytes_GET_SIZE(value)
    else:
        view = memoryview(value).cast("B")
        n = view.shape[0]
        p = &view[0] if n > 0 else <const unsigned char*>""
    if n > max_len - 1:
        raise ValueError(f"{name} is {n} octets, SMPP allows at most {max_len - 1}")
    if n and memchr(p, 0, <size_t>n) != NULL:
        raise ValueError(f"{name} contains a NUL octet")
    memcpy(b.data + b.length, p, <size_t>n)
    b.data[b.length + n] = 0
    b.length += n + 1
    return 0


cdef int _cd_raw(_CdBuf* b, object value, Py_ssize_t max_len, str what) except -1:
    """Write raw octets (short_message, TLV value) after a length check; reserves room."""
    cdef const unsigned char[::1] view
    cdef const unsigned char* p
    cdef Py_ssize_t n
    if type(value) is bytes:
        p = <const unsigned char*>PyBytes_AS_STRING(value)
        n = PyBytes_GET_SIZE(value)
    else:
        view = memoryview(value).cast("B")
        n = view.shape[0]
        p = &view[0] if n > 0 else <const unsigned char*>""
    if n > max_len:
        raise ValueError(what.format(n))
    _cd_reserve(b, n + 1)
    memcpy(b.data + b.length, p, <size_t>n)
    b.length += n
    return 0


cdef Py_ssize_t _cd_len(object value) except -1:
    if type(value) is bytes:
        return PyBytes_GET_SIZE(value)
    return memoryview(value).cast("B").shape[0]


cdef int _cd_tlvs_out(_CdBuf* b, object tlvs) except -1:
    cdef long tag
    cdef int overflow = 0
    cdef Py_ssize_t n, at
    if tlvs is None:
        return 0
    for tag_obj, value in tlvs:
        tag = PyLong_AsLongAndOverflow(tag_obj, &overflow)
        if tag == -1 and PyErr_Occurred():
            raise TypeError(f"TLV tag must be an int, got {type(tag_obj).__name__}")
        if overflow or tag < 0 or tag > 0xFFFF:
            raise ValueError(f"TLV tag must be 0..0xFFFF, got {tag_obj}")
        n = _cd_len(value)
        if n > 0xFFFF:
            raise ValueError(f"TLV 0x{tag:04X} value is {n} octets, at most 65535")
        _cd_reserve(b, 4 + n)
        at = b.length
        b.data[at] = (tag >> 8) & 0xFF
        b.data[at + 1] = tag & 0xFF
        b.data[at + 2] = (n >> 8) & 0xFF
        b.data[at + 3] = n & 0xFF
        b.length += 4
        _cd_raw(b, value, 0xFFFF, "")
    return 0


cdef int _cd_put_sm(_CdBuf* b, unsigned int command_id, object message) except -1:
    cdef tuple m
    if type(message) is tuple:
        m = <tuple>message
    else:
        m = tuple(message)
    if PyTuple_GET_SIZE(m) != 19:
        raise ValueError(f"a submit_sm/deliver_sm message has 19 items, got {len(m)}")
    cdef unsigned int seq = _cd_check_u32(<object>PyTuple_GET_ITEM(m, 0), "sequence_number")
    _cd_reserve(b, _CD_SM_MANDATORY_MAX)
    cdef Py_ssize_t start = b.length
    cdef unsigned char* h = b.data + start
    _cd_put_u32(h + 4, command_id)
    _cd_put_u32(h + 8, 0)
    _cd_put_u32(h + 12, seq)
    b.length += 16
    _cd_cstr(b, <object>PyTuple_GET_ITEM(m, 1), 6, "service_type")
    _cd_byte(b, <object>PyTuple_GET_ITEM(m, 2), "source_addr_ton")
    _cd_byte(b, <object>PyTuple_GET_ITEM(m, 3), "source_addr_npi")
    _cd_cstr(b, <object>PyTuple_GET_ITEM(m, 4), 21, "source_addr")
    _cd_byte(b, <object>PyTuple_GET_ITEM(m, 5), "dest_addr_ton")
    _cd_byte(b, <object>PyTuple_GET_ITEM(m, 6), "dest_addr_npi")
    _cd_cstr(b, <object>PyTuple_GET_ITEM(m, 7), 21, "destination_addr")
    _cd_byte(b, <object>PyTuple_GET_ITEM(m, 8), "esm_class")
    _cd_byte(b, <object>PyTuple_GET_ITEM(m, 9), "protocol_id")
    _cd_byte(b, <object>PyTuple_GET_ITEM(m, 10), "priority_flag")
    _cd_cstr(b, <object>PyTuple_GET_ITEM(m, 11), 17, "schedule_delivery_time")
    _cd_cstr(b, <object>PyTuple_GET_ITEM(m, 12), 17, "validity_period")
    _cd_byte(b, <object>PyTuple_GET_ITEM(m, 13), "registered_delivery")
    _cd_byte(b, <object>PyTuple_GET_ITEM(m, 14), "replace_if_present_flag")
    _cd_byte(b, <object>PyTuple_GET_ITEM(m, 15), "data_coding")
    _cd_byte(b, <object>PyTuple_GET_ITEM(m, 16), "sm_default_msg_id")
    short_message = <object>PyTuple_GET_ITEM(m, 17)
    cdef Py_ssize_t sm_length = _cd_len(short_message)
    if sm_length > 254:
        raise ValueError(f"short_message is {sm_length} octets, at most 254 "
                         "(use the message_payload TLV)")
    b.data[b.length] = <unsigned char>sm_length
    b.length += 1
    _cd_raw(b, short_message, 254, "")
    _cd_tlvs_out(b, <object>PyTuple_GET_ITEM(m, 18))
    _cd_put_u32(b.data + start, <unsigned int>(b.length - start))
    return 0


def encode_sm_batch(unsigned int command_id, messages):
    """Encode many submit_sm (or deliver_sm) into one buffer, one PDU after another.

    Each header is reserved first and its command_length filled once the body is written
    (SMPP 3.4 sections 3.2, 4.4.1, 4.6.1).
    """
    if command_id != _CD_SUBMIT_SM and command_id != _CD_DELIVER_SM:
        raise ValueError(f"encode_sm_batch encodes submit_sm or deliver_sm, not 0x{command_id:08X}")
    cdef _CdBuf b
    b.data = NULL
    b.length = 0
    b.capacity = 0
    try:
        for message in messages:
            _cd_put_sm(&b, command_id, message)
        return PyBytes_FromStringAndSize(<const char*>b.data, b.length)
    finally:
        free(b.data)


def encode_header_only(command_id, command_status, sequence_number):
    """enquire_link(_resp), unbind(_resp), generic_nack: a bare 16-octet header (sections 4.3-4.11)."""
    cdef unsigned char h[16]
    _cd_put_u32(h, 16)
    _cd_put_u32(h + 4, _cd_check_u32(command_id, "command_id"))
    _cd_put_u32(h + 8, _cd_check_u32(command_status, "command_status"))
    _cd_put_u32(h + 12, _cd_check_u32(sequence_number, "sequence_number"))
    return PyBytes_FromStringAndSize(<const char*>h, 16)


cdef int _cd_check_message_id_resp(unsigned int command_id) except -1:
    if command_id != _CD_SUBMIT_SM_RESP and command_id != _CD_DELIVER_SM_RESP \
            and command_id != _CD_DATA_SM_RESP:
        raise ValueError(f"0x{command_id:08X} is not submit_sm_resp, deliver_sm_resp or data_sm_resp")
    return 0


cdef int _cd_put_message_id_resp(_CdBuf* b, unsigned int command_id, object command_status,
                                 object sequence_number, object message_id) except -1:
    cdef unsigned int status = _cd_check_u32(command_status, "command_status")
    cdef unsigned int seq = _cd_check_u32(sequence_number, "sequence_number")
    _cd_reserve(b, 16 + 65)
    cdef Py_ssize_t start = b.length
    _cd_put_u32(b.data + start + 4, command_id)
    _cd_put_u32(b.data + start + 8, status)
    _cd_put_u32(b.data + start + 12, seq)
    b.length += 16
    if status == 0:
        _cd_cstr(b, message_id, 65, "message_id")
    _cd_put_u32(b.data + start, <unsigned int>(b.length - start))
    return 0


def encode_message_id_resp(unsigned int command_id, command_status, sequence_number, message_id):
    """submit_sm_resp / deliver_sm_resp / data_sm_resp (sections 4.4.2, 4.6.2, 4.7.2).

    With a non-zero status the body is left out, as section 4.4.2 says.
    """
    _cd_check_message_id_resp(command_id)
    cdef _CdBuf b
    b.data = NULL
    b.length = 0
    b.capacity = 0
    try:
        _cd_put_message_id_resp(&b, command_id, command_status, sequence_number, message_id)
        return PyBytes_FromStringAndSize(<const char*>b.data, b.length)
    finally:
        free(b.data)


def encode_message_id_resp_batch(unsigned int command_id, responses):
    """Many ``(command_status, sequence_number, message_id)`` responses into one buffer."""
    _cd_check_message_id_resp(command_id)
    cdef _CdBuf b
    b.data = NULL
    b.length = 0
    b.capacity = 0
    try:
        for command_status, sequence_number, message_id in responses:
            _cd_put_message_id_resp(&b, command_id, command_status, sequence_number, message_id)
        return PyBytes_FromStringAndSize(<const char*>b.data, b.length)
    finally:
        free(b.data)


def encode_bind(unsigned int command_id, sequence_number, system_id, password, system_type,
                interface_version, addr_ton, addr_npi, address_range):
    """bind_transmitter / bind_receiver / bind_transceiver (SMPP 3.4 section 4.1.1)."""
    if command_id != 0x00000001 and command_id != 0x00000002 and command_id != 0x00000009:
        raise ValueError(f"0x{command_id:08X} is not a bind command")
    cdef unsigned int seq = _cd_check_u32(sequence_number, "sequence_number")
    cdef _CdBuf b
    b.data = NULL
    b.length = 0
    b.capacity = 0
    try:
        _cd_reserve(&b, 16 + 16 + 9 + 13 + 3 + 41)
        _cd_put_u32(b.data + 4, command_id)
        _cd_put_u32(b.data + 8, 0)
        _cd_put_u32(b.data + 12, seq)
        b.length = 16
        _cd_cstr(&b, system_id, 16, "system_id")
        _cd_cstr(&b, password, 9, "password")
        _cd_cstr(&b, system_type, 13, "system_type")
        _cd_byte(&b, interface_version, "interface_version")
        _cd_byte(&b, addr_ton, "addr_ton")
        _cd_byte(&b, addr_npi, "addr_npi")
        _cd_cstr(&b, address_range, 41, "address_range")
        _cd_put_u32(b.data, <unsigned int>b.length)
        return PyBytes_FromStringAndSize(<const char*>b.data, b.length)
    finally:
        free(b.data)


def encode_bind_resp(unsigned int command_id, command_status, sequence_number, system_id,
                     sc_interface_version):
    """bind_*_resp (section 4.1.2) with the optional sc_interface_version TLV (5.3.2.25).

    With a non-zero status the body is left out (section 4.1.2 / 4.4.2 rule).
    """
    if command_id != 0x80000001 and command_id != 0x80000002 and command_id != 0x80000009:
        raise ValueError(f"0x{command_id:08X} is not a bind response")
    cdef unsigned int status = _cd_check_u32(command_status, "command_status")
    cdef unsigned int seq = _cd_check_u32(sequence_number, "sequence_number")
    cdef _CdBuf b
    b.data = NULL
    b.length = 0
    b.capacity = 0
    try:
        _cd_reserve(&b, 16 + 16 + 5)
        _cd_put_u32(b.data + 4, command_id)
        _cd_put_u32(b.data + 8, status)
        _cd_put_u32(b.data + 12, seq)
        b.length = 16
        if status == 0:
            _cd_cstr(&b, system_id, 16, "system_id")
            if sc_interface_version is not None:
                b.data[b.length] = 0x02
                b.data[b.length + 1] = 0x10
                b.data[b.length + 2] = 0
                b.data[b.length + 3] = 1
                b.length += 4
                _cd_byte(&b, sc_interface_version, "sc_interface_version")
        _cd_put_u32(b.data, <unsigned int>b.length)
        return PyBytes_FromStringAndSize(<const char*>b.data, b.length)
    finally:
        free(b.data)


# ------------------------------------------------------------------------------ receipts

# message_state TLV values (section 5.2.28) -> the stat word of receipt texts (Appendix B).
_cd_STATE_WORDS = (None, b"ENROUTE", b"DELIVRD", b"EXPIRED", b"DELETED", b"UNDELIV",
                   b"ACCEPTD", b"UNKNOWN", b"REJECTD", b"SKIPPED")

# Receipt keys (Appendix B), grouped by first letter and longest first inside a group so
# "submit date" wins over "sub" (the reference tries them in an order with the same outcome);
# the slot is the index in the result tuple. A two-word key matches with one or more spaces or
# underscores between the words. _cd_KEY_FIRST maps a first letter (either case) to
# (first key, count), so a token that starts no key is rejected with one table lookup. Key
# words are lower-case letters only, so ``(c | 0x20) == letter`` is an exact case-insensitive
# test (only the two cases of that letter pass it).
cdef const char* _cd_WORD1[8]
cdef const char* _cd_WORD2[8]
cdef int _cd_KEY_SLOTS[8]
cdef unsigned char _cd_KEY_FIRST[256][2]
_cd_WORD1[:] = [b"submit", b"stat", b"sub", b"done", b"dlvrd", b"text", b"err", b"id"]
_cd_WORD2[:] = [b"date", b"", b"", b"date", b"", b"", b"", b""]
_cd_KEY_SLOTS[:] = [3, 5, 1, 4, 2, 7, 6, 0]


cdef void _cd_init_key_table() noexcept:
    cdef int c
    for c in range(256):
        _cd_KEY_FIRST[c][0] = 0
        _cd_KEY_FIRST[c][1] = 0
    for c, first, count in ((0x73, 0, 3), (0x64, 3, 2), (0x74, 5, 1), (0x65, 6, 1), (0x69, 7, 1)):
        _cd_KEY_FIRST[c][0] = first
        _cd_KEY_FIRST[c][1] = count
        _cd_KEY_FIRST[c - 0x20][0] = first  # upper case
        _cd_KEY_FIRST[c - 0x20][1] = count


_cd_init_key_table()


cdef inline Py_ssize_t _cd_word(const unsigned char* s, Py_ssize_t j, Py_ssize_t n,
                                const char* word) noexcept nogil:
    """Index after ``word`` (case-insensitive) at ``j``, or -1."""
    cdef const unsigned char* w = <const unsigned char*>word
    while w[0] != 0:
        if j >= n or (s[j] | 0x20) != w[0]:
            return -1
        j += 1
        w += 1
    return j


cdef inline bint _cd_is_space(unsigned char ch) noexcept nogil:
    return ch == 0x20 or ch == 0x09 or ch == 0x0D or ch == 0x0A


cdef int _cd_match_key(const unsigned char* s, Py_ssize_t i, Py_ssize_t n,
                       Py_ssize_t* after) noexcept nogil:
    """At ``i``, a receipt key then optional spaces then ':'? Return its slot (or -1)."""
    cdef int k, first, count
    cdef Py_ssize_t j
    if i >= n:
        return -1
    count = _cd_KEY_FIRST[s[i]][1]
    if count == 0:
        return -1
    first = _cd_KEY_FIRST[s[i]][0]
    for k in range(first, first + count):
        j = _cd_word(s, i, n, _cd_WORD1[k])
        if j < 0:
            continue
        if _cd_WORD2[k][0] != 0:
            if j >= n or (s[j] != 0x20 and s[j] != 0x5F):
                continue
            while j < n and (s[j] == 0x20 or s[j] == 0x5F):
                j += 1
            j = _cd_word(s, j, n, _cd_WORD2[k])
            if j < 0:
                continue
        while j < n and s[j] == 0x20:
            j += 1
        if j < n and s[j] == 0x3A:
            after[0] = j + 1
            return _cd_KEY_SLOTS[k]
    return -1


cdef tuple _cd_parse_receipt(object short_message, object tlvs):
    cdef const unsigned char[::1] view
    cdef const unsigned char* s
    cdef Py_ssize_t n
    if type(short_message) is bytes:
        s = <const unsigned char*>PyBytes_AS_STRING(short_message)
        n = PyBytes_GET_SIZE(short_message)
    else:
        view = memoryview(short_message).cast("B")
        n = view.shape[0]
        s = &view[0] if n > 0 else <const unsigned char*>""
    cdef object rid = None
    cdef int message_state = -1
    if tlvs:
        rid = _cd_tlv_values(tlvs, &message_state)
    return _cd_receipt(s, n, rid, message_state)


cdef tuple _cd_receipt(const unsigned char* s, Py_ssize_t n, object rid, int message_state):
    """The receipt tuple from the text at ``s`` and the TLV values already extracted
    (``rid`` None and ``message_state`` -1 when absent)."""
    # (start, end) of each field's value; start -1 = absent
    cdef Py_ssize_t starts[8]
    cdef Py_ssize_t ends[8]
    cdef Py_ssize_t i = 0, j = 0, k = 0, dummy = 0
    cdef int slot, f
    for f in range(8):
        starts[f] = -1
        ends[f] = -1
    while i < n:
        while i < n and _cd_is_space(s[i]):
            i += 1
        if i >= n:
            break
        slot = _cd_match_key(s, i, n, &j)
        if slot < 0:
            while i < n and not _cd_is_space(s[i]):
                i += 1
            continue
        while j < n and s[j] == 0x20:
            j += 1
        if slot == 7:
            k = n
            while k > j and _cd_is_space(s[k - 1]):
                k -= 1
            i = n
        elif _cd_match_key(s, j, n, &dummy) >= 0:
            k = j  # "err: stat:..." : an empty value, the next key follows
            i = j
        else:
            k = j
            while k < n and not _cd_is_space(s[k]):
                k += 1
            i = k
        if starts[slot] < 0:
            starts[slot] = j
            ends[slot] = k
    cdef tuple out = PyTuple_New(9)
    for f in range(8):
        if f == 0 and rid is not None:
            _cd_set(out, 0, rid)
        elif f == 5 and 1 <= message_state <= 9:
            _cd_set(out, 5, <object>PyTuple_GET_ITEM(_cd_STATE_WORDS, message_state))
        elif starts[f] < 0:
            _cd_set(out, f, None)
        elif f == 5:
            _cd_set(out, 5, _cd_stat_word(s + starts[f], ends[f] - starts[f]))
        else:
            _cd_set(out, f, _cd_value(s + starts[f], ends[f] - starts[f]))
    _cd_set(out, 8, message_state if message_state >= 0 else None)
    _cd_untrack(out)
    return out


# "0".."9", "00".."99", "000".."999" as ready-made bytes: sub, dlvrd and err are almost always
# three digits, so most receipts need no allocation for them.
_cd_DIGITS = tuple([b"%d" % i for i in range(10)] + [b"%02d" % i for i in range(100)]
                   + [b"%03d" % i for i in range(1000)])


cdef object _cd_value(const unsigned char* p, Py_ssize_t n):
    cdef Py_ssize_t k
    cdef int value = 0
    if 0 < n <= 3:
        for k in range(n):
            if p[k] < 0x30 or p[k] > 0x39:
                return PyBytes_FromStringAndSize(<const char*>p, n)
            value = value * 10 + (p[k] - 0x30)
        if n == 2:
            value += 10
        elif n == 3:
            value += 110
        return <object>PyTuple_GET_ITEM(_cd_DIGITS, value)
    return PyBytes_FromStringAndSize(<const char*>p, n)


cdef object _cd_stat_word(const unsigned char* p, Py_ssize_t n):
    """The stat value upper-cased; the nine standard words come from a table (no allocation)."""
    cdef bytes word = PyBytes_FromStringAndSize(<const char*>p, n) if n != 7 else None
    cdef unsigned char upper[7]
    cdef unsigned char* w
    cdef Py_ssize_t k
    cdef int i
    if n == 7:
        for k in range(7):
            upper[k] = p[k] - 0x20 if 0x61 <= p[k] <= 0x7A else p[k]
        for i in range(1, 10):
            if memcmp(upper, PyBytes_AS_STRING(<bytes>PyTuple_GET_ITEM(_cd_STATE_WORDS, i)), 7) == 0:
                return <object>PyTuple_GET_ITEM(_cd_STATE_WORDS, i)
        return PyBytes_FromStringAndSize(<const char*>upper, 7)
    w = <unsigned char*>PyBytes_AS_STRING(word)
    for k in range(n):
        if 0x61 <= w[k] <= 0x7A:
            w[k] = w[k] - 0x20
    return word


cdef object _cd_tlv_values(object tlvs, int* message_state):
    """receipted_message_id (5.3.2.12, a C-string, returned without its NUL) and
    message_state (5.3.2.35, one octet, stored in ``message_state``; -1 when absent)."""
    cdef const char* p
    cdef const void* nul
    cdef PyObject* found
    if type(tlvs) is dict:
        found = PyDict_GetItem(tlvs, 0x001E)
        rid = <object>found if found != NULL else None
        found = PyDict_GetItem(tlvs, 0x0427)
        state = <object>found if found != NULL else None
    else:
        rid = tlvs.get(0x001E)
        state = tlvs.get(0x0427)
    if state is not None and len(state) == 1:
        message_state[0] = state[0]
    if rid is not None:
        if type(rid) is bytes:
            p = PyBytes_AS_STRING(rid)
            nul = memchr(p, 0, <size_t>PyBytes_GET_SIZE(rid))
            if nul != NULL:
                rid = PyBytes_FromStringAndSize(p, <const char*>nul - p)
        else:
            nul_at = rid.find(b"\x00")
            if nul_at >= 0:
                rid = rid[:nul_at]
    return rid


cdef inline void _cd_replace(tuple t, Py_ssize_t i, object v):
    """Replace an item of a tuple we just built and own alone."""
    old = <object>PyTuple_GET_ITEM(t, i)
    Py_INCREF(v)
    PyTuple_SET_ITEM(t, i, v)
    Py_DECREF(old)


def parse_receipt(short_message, tlvs=None):
    """Parse a delivery receipt (SMPP 3.4 Appendix B text, sections 5.3.2.12 / 5.3.2.35 TLVs).

    Returns ``(message_id, sub, dlvrd, submit_date, done_date, stat, err, text,
    message_state)``; the receipted_message_id and message_state TLVs win over the text.
    """
    return _cd_parse_receipt(short_message, tlvs)


def parse_receipts(pdus):
    """``(sequence_number, receipt)`` per deliver_sm in ``pdus`` that is a receipt (esm_class
    type 0x04 or 0x20, section 5.2.12, or carrying receipted_message_id)."""
    cdef list out = []
    cdef tuple body
    for pdu in pdus:
        if pdu[0] != _CD_DELIVER_SM:
            continue
        body = pdu[3]
        tlvs = body[17]
        if (<int>body[7]) & 0x24 or 0x001E in tlvs:
            pair = (pdu[2], _cd_parse_receipt(body[16], tlvs))
            _cd_untrack(pair)
            out.append(pair)
    return out


cdef object _cd_receipt_pdu(const unsigned char* d, _CdSm* f):
    """The receipt tuple of a scanned deliver_sm, or None when it is not a receipt. The TLVs
    are read in place (last occurrence wins, as in the decoded dict)."""
    cdef Py_ssize_t pos = f.tlv_start
    cdef Py_ssize_t rid_at = -1, rid_len = 0
    cdef int message_state = -1
    cdef unsigned int tag, length
    cdef const void* nul
    while pos < f.tlv_end:
        tag = ((<unsigned int>d[pos]) << 8) | d[pos + 1]
        length = ((<unsigned int>d[pos + 2]) << 8) | d[pos + 3]
        pos += 4
        if tag == 0x001E:
            rid_at = pos
            rid_len = length
        elif tag == 0x0427:
            message_state = d[pos] if length == 1 else -1
        pos += length
    if not (d[f.esm_class] & 0x24) and rid_at < 0:
        return None
    rid = None
    if rid_at >= 0:
        nul = memchr(d + rid_at, 0, <size_t>rid_len) if rid_len else NULL
        if nul != NULL:
            rid_len = <const unsigned char*>nul - (d + rid_at)
        rid = PyBytes_FromStringAndSize(<const char*>(d + rid_at), rid_len)
    return _cd_receipt(d + f.short_message, f.sm_length, rid, message_state)


def decode_with_receipts(data, Py_ssize_t max_pdu_length=_CD_DEFAULT_MAX_PDU):
    """``decode_pdus`` for a receiving bind, with receipts parsed on the way: returns
    ``(pdus, receipts, consumed)`` where ``receipts`` holds ``(sequence_number, receipt)`` for
    each deliver_sm receipt (same test and result as ``parse_receipts``) and ``pdus`` every
    other PDU. Same framing, same errors, same consumption as ``decode_pdus``. A receipt's
    deliver_sm is never built as a tuple, which is what makes this path fast."""
    cdef const unsigned char[::1] view
    cdef const unsigned char* d
    cdef Py_ssize_t total_len
    if type(data) is bytes:
        d = <const unsigned char*>PyBytes_AS_STRING(data)
        total_len = PyBytes_GET_SIZE(data)
    else:
        view = memoryview(data).cast("B")
        total_len = view.shape[0]
        d = &view[0] if total_len > 0 else <const unsigned char*>""
    cdef list pdus = []
    cdef list receipts = []
    cdef Py_ssize_t pos = 0
    cdef unsigned int length, command_id, status, sequence
    cdef _CdSm f
    cdef object t
    while total_len - pos >= 4:
        length = _cd_u32(d + pos)
        if length < 16 or <Py_ssize_t>length > max_pdu_length:
            if pdus or receipts:
                break
            cid = seq = None
            if total_len - pos >= 16:
                cid = _cd_u32(d + pos + 4)
                seq = _cd_u32(d + pos + 12)
            raise _cd_PduError(
                f"command_length {length} outside 16..{max_pdu_length}",
                sequence_number=seq, command_id=cid, frame_length=None,
                command_status=_CD_RINVCMDLEN)
        if total_len - pos < length:
            break
        command_id = _cd_u32(d + pos + 4)
        status = _cd_u32(d + pos + 8)
        sequence = _cd_u32(d + pos + 12)
        body = None
        try:
            if command_id == _CD_DELIVER_SM:
                _cd_sm_scan(d, pos + 16, pos + length, &f)
                receipt = _cd_receipt_pdu(d, &f)
                if receipt is not None:
                    t = (sequence, receipt)
                    _cd_untrack(t)
                    receipts.append(t)
                    pos += length
                    continue
            body = _cd_body(command_id, d, pos + 16, pos + length)
        except _CdBodyError as exc:
            if pdus or receipts:
                break
            raise _cd_PduError(
                f"malformed PDU 0x{command_id:08X} seq {sequence}: {exc}",
                sequence_number=sequence, command_id=command_id, frame_length=length,
                command_status=exc.status) from None
        t = PyTuple_New(4)
        _cd_set(t, 0, _cd_id_object(command_id))
        _cd_set(t, 1, _cd_octet(status) if status < 256 else status)
        _cd_set(t, 2, sequence)
        _cd_set(t, 3, body)
        _cd_untrack(t)
        pdus.append(t)
        pos += length
    return pdus, receipts, pos
