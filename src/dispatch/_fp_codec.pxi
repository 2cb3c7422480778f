# SMPP PDU encoding and decoding. Included by _fastpath.pyx.
#
# Split in three files of one job each: this one (shared helpers, frame splitter and decoders),
# _fp_codec_encode.pxi (encoders) and _fp_codec_receipt.pxi (receipt parser and the fused
# decode_with_receipts), included at the end of this file.
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


cdef tuple _cd_data_sm_body(const unsigned char* d, Py_ssize_t pos, Py_ssize_t end):
    """data_sm (section 4.7.1) in the deliver_sm field layout (see the reference codec)."""
    service_type = _cd_cstring(d, &pos, end, 6, "service_type", _CD_RINVCMDLEN)
    if end - pos < 2:
        raise _CdBodyError("truncated source_addr_ton/npi", _CD_RINVCMDLEN)
    cdef int src_ton = d[pos]
    cdef int src_npi = d[pos + 1]
    pos += 2
    source_addr = _cd_cstring(d, &pos, end, 65, "source_addr", _CD_RINVSRCADR)
    if end - pos < 2:
        raise _CdBodyError("truncated dest_addr_ton/npi", _CD_RINVCMDLEN)
    cdef int dst_ton = d[pos]
    cdef int dst_npi = d[pos + 1]
    pos += 2
    destination_addr = _cd_cstring(d, &pos, end, 65, "destination_addr", _CD_RINVDSTADR)
    if end - pos < 3:
        raise _CdBodyError("truncated esm_class/registered_delivery/data_coding", _CD_RINVCMDLEN)
    cdef int esm_class = d[pos]
    cdef int registered = d[pos + 1]
    cdef int data_coding = d[pos + 2]
    return (service_type, src_ton, src_npi, source_addr, dst_ton, dst_npi, destination_addr,
            esm_class, 0, 0, b"", b"", registered, 0, data_coding, 0, b"",
            _cd_tlvs(d, pos + 3, end))


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
        if end - pos < 65 and memchr(d + pos, 0, <size_t>(end - pos)) == NULL:
            # the NUL left out: taken whole (see the reference codec's docstring)
            return PyBytes_FromStringAndSize(<const char*>(d + pos), end - pos)
        return _cd_cstring(d, &pos, end, 65, "message_id", _CD_RINVCMDLEN)
    if command_id == 0x80000000 or command_id == 0x00000015 or command_id == 0x80000015 \
            or command_id == 0x00000006 or command_id == 0x80000006:
        return None
    if command_id == _CD_SUBMIT_SM or command_id == _CD_DELIVER_SM:
        return _cd_sm_body(d, pos, end)
    if command_id == 0x00000103:  # data_sm
        return _cd_data_sm_body(d, pos, end)
    if command_id == 0x80000001 or command_id == 0x80000002 or command_id == 0x80000009:
        if pos == end:
            return (b"", {})
        system_id = _cd_cstring(d, &pos, end, 16, "system_id", _CD_RINVCMDLEN)
        return (system_id, _cd_tlvs(d, pos, end))
    if command_id == 0x00000001 or command_id == 0x00000002 or command_id == 0x00000009:
        return _cd_bind_body(d, pos, end)
    return PyBytes_FromStringAndSize(<const char*>(d + pos), end - pos)


cdef extern from "Python.h":
    # Raw-reference twins of the CPython calls (new references, NULL on error), for the
    # per-PDU hot path where Cython's object temporaries would add refcount traffic.
    PyObject* _cd_raw_bytes "PyBytes_FromStringAndSize" (const char* v, Py_ssize_t n)
    PyObject* _cd_raw_int "PyLong_FromUnsignedLong" (unsigned long v)
    PyObject* _cd_raw_tuple "PyTuple_New" (Py_ssize_t n)
    void _cd_raw_set "PyTuple_SET_ITEM" (PyObject* t, Py_ssize_t i, PyObject* v)
    int _cd_raw_append "PyList_Append" (object lst, PyObject* item)
    void _cd_raw_incref "Py_INCREF" (PyObject* o)
    void _cd_raw_decref "Py_DECREF" (PyObject* o)


cdef int _cd_append_id_resp(list pdus, unsigned int command_id, unsigned int status,
                            unsigned int sequence, const unsigned char* message_id,
                            Py_ssize_t n) except -1:
    """Append ``(command_id, command_status, sequence_number, message_id)`` for a
    submit_sm_resp / deliver_sm_resp (SMPP 3.4 sections 4.4.2, 4.6.2)."""
    cdef PyObject* t = _cd_raw_tuple(4)
    cdef PyObject* item
    if t == NULL:
        raise MemoryError()
    # both response ids have the response bit and a low id below 0x200: a cached int
    item = PyTuple_GET_ITEM(_cd_ID_OBJECTS, (command_id & 0x1FF) | 0x200)
    _cd_raw_incref(item)
    _cd_raw_set(t, 0, item)
    if status < 256:
        item = PyTuple_GET_ITEM(_cd_OCTETS, status)
        _cd_raw_incref(item)
    else:
        item = _cd_raw_int(status)
    _cd_raw_set(t, 1, item)
    if item == NULL:
        _cd_raw_decref(t)
        raise MemoryError()
    item = _cd_raw_int(sequence)
    _cd_raw_set(t, 2, item)
    if item == NULL:
        _cd_raw_decref(t)
        raise MemoryError()
    item = _cd_raw_bytes(<const char*>message_id, n)
    _cd_raw_set(t, 3, item)
    if item == NULL:
        _cd_raw_decref(t)
        raise MemoryError()
    PyObject_GC_UnTrack(<void*>t)
    if _cd_raw_append(pdus, t) < 0:
        _cd_raw_decref(t)
        return -1
    _cd_raw_decref(t)
    return 0


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
        if (command_id == _CD_SUBMIT_SM_RESP or command_id == _CD_DELIVER_SM_RESP) \
                and length > 16:
            # The hot response (section 4.4.2): a message_id C-string, found inline and built
            # into its tuple with raw references (no refcount round trips, no try block);
            # anything unusual falls through to the general decoder for the exact error.
            nul = memchr(d + pos + 16, 0, <size_t>(length - 16 if length < 16 + 65 else 65))
            if nul != NULL:
                _cd_append_id_resp(pdus, command_id, status, sequence, d + pos + 16,
                                   <const unsigned char*>nul - (d + pos + 16))
                pos += length
                continue
        try:
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


include "_fp_codec_encode.pxi"
include "_fp_codec_receipt.pxi"
