# Delivery receipt parser and the fused decoder for receiving binds. Included by
# _fp_codec.pxi (see there for the conventions).

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
        if f == 0 and rid is not None and (starts[0] < 0 or len(rid) > 0):
            _cd_set(out, 0, rid)  # an empty TLV says nothing: the text's id stands
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
    """The stat value upper-cased; the nine standard words come from a table (no allocation).

    Other lengths are upper-cased into a *fresh* bytes object: ``PyBytes_FromStringAndSize``
    with a source returns CPython's shared single-byte objects for n == 1, and writing into
    one of those changed that byte for the whole process (a fuzzer found ``b"t"`` turned into
    ``b"T"`` after a receipt with ``stat:t``)."""
    cdef bytes word
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
    word = PyBytes_FromStringAndSize(NULL, n)  # NULL: never a shared object
    w = <unsigned char*>PyBytes_AS_STRING(word)
    for k in range(n):
        w[k] = p[k] - 0x20 if 0x61 <= p[k] <= 0x7A else p[k]
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
    message_state)``; the receipted_message_id and message_state TLVs win over the text
    (an empty receipted_message_id only when the text has no id).
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
