# SMPP PDU encoders. Included by _fp_codec.pxi (see there for the conventions).

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
