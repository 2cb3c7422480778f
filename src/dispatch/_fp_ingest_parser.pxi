# The streaming recipient parser of the fast path. Included by _fp_ingest.pxi (which holds the
# C helpers: scanning, normalisation, SipHash, the dedupe set). Rules: dispatch/_reference/ingest.py.


@cython.final
cdef class RecipientParser:
    """Streaming recipient-file parser: ``feed`` chunks split anywhere, then ``finish``.

    Each call returns a ``RecipientBatch`` of the recipients completed by it; counters and errors
    accumulate on the parser. A configuration problem found in the file (a named phone column
    missing from the header, an index out of range) raises ValueError.
    """

    cdef _ing_u64 _k0, _k1
    cdef bint _csv, _at_start, _pending_cr, _skipping, _finished, _need_columns, _oom
    cdef int _delim
    cdef object _has_header, _phone_column
    cdef dpi_trunk _trunk
    cdef Py_ssize_t _max_line, _max_errors, _phone_index, _field_count
    cdef unsigned char* _carry
    cdef Py_ssize_t _carry_len, _carry_cap
    cdef dpi_set _seen
    # per run: candidates (packed, line, first variable span) and CSV field spans (start, end,
    # has doubled quotes) of the current record and of the accepted records' variables
    cdef dpi_vec _cand_num, _cand_line, _cand_span, _cand_digits, _fields, _var_spans
    cdef dpi_vec _err_line, _err_code
    # the batch being built: filled in place by the C loops, handed out whole (no copy)
    cdef _ing_carray.array _batch_numbers, _batch_lines
    cdef PyObject* _batch_hashes  # a bytes object we hold the only reference to, or NULL
    cdef size_t _batch_n
    cdef Py_ssize_t _pend_end, _pend_line, _errors_flushed
    cdef long long _reason_counts[8]
    cdef list _variables
    cdef readonly long long bytes_total, lines, valid, invalid, duplicates
    cdef readonly list errors
    cdef readonly object header
    cdef readonly tuple variable_names

    def __cinit__(self):
        self._carry = NULL
        self._batch_hashes = NULL

    def __init__(self, hash_key, *, str fmt="txt", delimiter=None, has_header=None,
                 phone_column=None, str trunk_prefix="", int trunk_national_length=0,
                 str trunk_country_code="", Py_ssize_t max_line_bytes=65536,
                 Py_ssize_t max_errors=1000, expected_bytes=None):
        cdef const unsigned char[::1] k = hash_key
        if k.shape[0] != 16:
            raise ValueError("hash_key must be 16 bytes")
        if fmt not in ("txt", "csv"):
            raise ValueError("fmt must be 'txt' or 'csv'")
        if delimiter is not None and delimiter not in (",", ";", "\t"):
            raise ValueError("delimiter must be ',', ';' or '\\t'")
        if max_line_bytes < 16 or max_errors < 0:
            raise ValueError("max_line_bytes must be >= 16 and max_errors >= 0")
        if isinstance(phone_column, int) and phone_column < 0:
            raise ValueError("phone_column index must be >= 0")
        _ing_set_trunk(&self._trunk, trunk_prefix, trunk_national_length, trunk_country_code)
        self._k0 = _ing_key_word(&k[0])
        self._k1 = _ing_key_word(&k[8])
        self._csv = fmt == "csv"
        self._delim = -1 if delimiter is None else ord(delimiter)
        self._has_header = has_header
        self._phone_column = phone_column
        self._max_line = max_line_bytes
        self._max_errors = max_errors
        self._at_start = True
        self._phone_index = -1
        if expected_bytes is not None and expected_bytes > 0:
            # Size the dedupe set for the numbers such a file can hold (one per 12 bytes),
            # up to _ING_RESERVE_MAX: growing it doubling by doubling rehashes every number
            # once more and zeroes twice the final table (a fifth of the txt time).
            if dpi_set_reserve(&self._seen, min(expected_bytes // 12, _ING_RESERVE_MAX)) < 0:
                raise MemoryError()
        self.errors = []
        self.header = None
        self.variable_names = ()

    def __dealloc__(self):
        _ing_free(self._carry)
        Py_XDECREF(self._batch_hashes)
        dpi_set_free(&self._seen)
        dpi_vec_free(&self._cand_num)
        dpi_vec_free(&self._cand_line)
        dpi_vec_free(&self._cand_span)
        dpi_vec_free(&self._cand_digits)
        dpi_vec_free(&self._fields)
        dpi_vec_free(&self._var_spans)
        dpi_vec_free(&self._err_line)
        dpi_vec_free(&self._err_code)

    @property
    def delimiter(self):
        """The CSV delimiter in use (None until detected, and for txt)."""
        return chr(self._delim) if self._csv and self._delim >= 0 else None

    @property
    def phone_column_index(self):
        return self._phone_index if self._phone_index >= 0 else None

    @property
    def error_counts(self):
        return {REASONS[i]: int(self._reason_counts[i]) for i in range(8)
                if self._reason_counts[i]}

    # ---------------------------------------------------------------- feeding

    def feed(self, data):
        """The recipients completed by this chunk (GIL released while scanning)."""
        cdef const unsigned char[::1] view = data
        cdef Py_ssize_t n = view.shape[0], take, old, pos
        cdef const unsigned char* p = &view[0] if n else <const unsigned char*>""
        if self._finished:
            raise ValueError("parser already finished")
        self.bytes_total += n
        self._start_batch()
        if self._carry_len == 0:
            pos = self._run(p, 0, n, False)
            self._keep_tail(p + pos, n - pos)
            return self._build_batch()
        # Complete the pending record from a bounded prefix of the chunk, then scan the chunk in
        # place: a huge chunk is never copied, and the carry never holds more than a line.
        take = n if n <= self._max_line + 8 else self._max_line + 8
        old = self._carry_len
        self._reserve_carry(old + take)
        _ing_memcpy(self._carry + old, p, <size_t>take)
        self._carry_len = old + take
        pos = self._run(self._carry, 0, self._carry_len, False)
        if take == n:
            self._keep_tail(self._carry + pos, self._carry_len - pos)
        else:
            self._carry_len = 0
            if pos < old:
                raise RuntimeError("recipient parser: pending record not completed")
            pos = self._run(p, pos - old, n, False)
            self._keep_tail(p + pos, n - pos)
        return self._build_batch()

    def finish(self):
        if self._finished:
            raise ValueError("parser already finished")
        self._start_batch()
        self._run(self._carry, 0, self._carry_len, True)
        self._carry_len = 0
        self._finished = True
        return self._build_batch()

    cdef void _reserve_carry(self, Py_ssize_t need) except *:
        cdef unsigned char* grown
        if need <= self._carry_cap:
            return
        grown = <unsigned char*>_ing_realloc(self._carry, <size_t>need + 64)
        if grown == NULL:
            raise MemoryError()
        self._carry = grown
        self._carry_cap = need + 64

    cdef void _keep_tail(self, const unsigned char* tail, Py_ssize_t n) except *:
        if n and tail != self._carry:
            self._reserve_carry(n)
            _ing_memmove(self._carry, tail, <size_t>n)
        self._carry_len = n

    cdef void _start_batch(self):
        self._batch_n = 0
        self._batch_numbers = _ing_carray.clone(_ING_Q_TEMPLATE, 0, False)
        self._batch_lines = _ing_carray.clone(_ING_Q_TEMPLATE, 0, False)
        Py_CLEAR(self._batch_hashes)
        self._variables = [] if self._csv else None

    cdef int _reserve_batch(self, size_t count) except -1:
        """Room for ``count`` recipients in the batch being built (the bytes object is ours
        alone until handed out, so it may be resized in place)."""
        cdef bytes fresh
        if <size_t>len(self._batch_numbers) < count:
            _ing_carray.resize(self._batch_numbers, <Py_ssize_t>count)
            _ing_carray.resize(self._batch_lines, <Py_ssize_t>count)
        if self._batch_hashes == NULL:
            fresh = _ing_bytes(NULL, <Py_ssize_t>(16 * count))
            Py_INCREF(fresh)
            self._batch_hashes = <PyObject*>fresh
        elif <size_t>PyBytes_GET_SIZE(<object>self._batch_hashes) < 16 * count:
            _PyBytes_Resize(&self._batch_hashes, <Py_ssize_t>(16 * count))
        return 0

    cdef object _build_batch(self):
        cdef Py_ssize_t n = <Py_ssize_t>self._batch_n
        cdef object hashes = b""
        _ing_carray.resize(self._batch_numbers, n)
        _ing_carray.resize(self._batch_lines, n)
        if self._batch_hashes != NULL and n:
            if PyBytes_GET_SIZE(<object>self._batch_hashes) != 16 * n:
                _PyBytes_Resize(&self._batch_hashes, 16 * n)
            hashes = <object>self._batch_hashes
        Py_CLEAR(self._batch_hashes)
        batch = RecipientBatch(self._batch_numbers, hashes, self._batch_lines,
                               self.variable_names, self._variables)
        self._batch_numbers = self._batch_lines = None
        return batch

    cdef Py_ssize_t _run(self, const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end,
                         bint eof) except -1:
        """Consume ``buf[pos:end]`` (stopping once with the GIL for a CSV header), then dedupe
        and hash what it found. Returns where unconsumed data starts."""
        self._cand_num.n = self._cand_line.n = self._cand_span.n = self._var_spans.n = 0
        self._cand_digits.n = 0
        while True:
            with nogil:
                pos = self._consume(buf, pos, end, eof)
            if not self._need_columns:
                break
            self._need_columns = False
            if not self._setup_columns(buf):
                self._csv_fields(buf, self._pend_line)
            if self._pend_end == end:
                self.lines += 1
                pos = end
            else:
                pos = self._after_eol(buf, self._pend_end, end)
        self._finish_run(buf)
        return pos

    # ---------------------------------------------------------------- scanning (no GIL)

    cdef inline void _error(self, Py_ssize_t line_no, int code) noexcept nogil:
        self.invalid += 1
        self._reason_counts[code - 1] += 1
        if self._errors_flushed + <Py_ssize_t>self._err_line.n < self._max_errors:
            if dpi_vec_push(&self._err_line, <_ing_u64>line_no) < 0 or \
                    dpi_vec_push(&self._err_code, <_ing_u64>code) < 0:
                self._oom = True

    cdef inline Py_ssize_t _after_eol(self, const unsigned char* buf, Py_ssize_t t,
                                      Py_ssize_t end) noexcept nogil:
        self.lines += 1
        if buf[t] == _ING_CR:
            if t + 1 < end:
                return t + 2 if buf[t + 1] == _ING_LF else t + 1
            self._pending_cr = True
        return t + 1

    cdef Py_ssize_t _consume(self, const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end,
                             bint eof) noexcept nogil:
        cdef Py_ssize_t t, lim, rec_end
        cdef _ing_u64 packed = 0
        cdef unsigned char* record
        cdef int code
        if self._pending_cr and pos < end:
            self._pending_cr = False
            if buf[pos] == _ING_LF:
                pos += 1
        if self._at_start:
            if end - pos < 3 and not eof and _ing_bom_prefix(buf, pos, end):
                return pos
            self._at_start = False
            if end - pos >= 3 and buf[pos] == 0xEF and buf[pos + 1] == 0xBB and buf[pos + 2] == 0xBF:
                pos += 3
        while True:
            if self._skipping:
                t = dpi_find_eol(buf, pos, end)
                if t < 0:
                    if eof:
                        self.lines += 1
                        self._skipping = False
                    return end
                self._skipping = False
                pos = self._after_eol(buf, t, end)
                continue
            if pos >= end:
                return pos
            if not self._csv and end - pos > 32:  # the common lines in one C loop
                pos = self._txt_run(buf, pos, end)
                if pos >= end:
                    return pos
            lim = pos + self._max_line + 1
            if lim > end:
                lim = end
            if not self._csv:  # a txt line in one pass; the rest below
                record = self._digits_slot()
                if record == NULL:
                    return end
                code = dpi_txt_line_any(buf, pos, lim, end, &self._trunk, &packed, record, &t)
                if t >= 0:
                    if code != DPI_BLANK:
                        self._txt_result(buf, pos, t, code, packed)
                    pos = self._after_eol(buf, t, end)
                    continue
            else:
                t = dpi_find_eol(buf, pos, lim)
            if t < 0:
                if end - pos > self._max_line:
                    self._error(self.lines + 1, _ING_TOO_LONG_LINE)
                    self._skipping = True
                    continue
                if not eof:
                    return pos
                t = end
            if dpi_is_blank(buf, pos, t):
                if t == end:
                    self.lines += 1
                    return end
                pos = self._after_eol(buf, t, end)
                continue
            if not self._csv:
                self._txt_record(buf, pos, t)
                rec_end = t
            else:
                rec_end = self._csv_record(buf, pos, t, end, eof)
                if rec_end == _ING_WAIT:
                    return pos
                if rec_end == _ING_NEED_COLUMNS:
                    self._need_columns = True
                    return pos
            if rec_end == end:  # the last line (its terminator, if any, counted inside)
                if buf[end - 1] != _ING_CR and buf[end - 1] != _ING_LF:
                    self.lines += 1
                return end
            pos = self._after_eol(buf, rec_end, end)

    cdef Py_ssize_t _txt_run(self, const unsigned char* buf, Py_ssize_t pos,
                             Py_ssize_t end) noexcept nogil:
        """The common txt lines from ``pos`` in one C loop (dpi_txt_run); returns where it
        stopped. Room is reserved first for every number the rest of the buffer can hold (a
        valid line takes 11 bytes or more)."""
        cdef size_t n = self._cand_num.n, room = n + <size_t>((end - pos) // 11) + 1
        if dpi_vec_reserve(&self._cand_num, room) < 0 or \
                dpi_vec_reserve(&self._cand_line, room) < 0 or \
                dpi_vec_reserve(&self._cand_digits, 2 * room) < 0:
            self._oom = True
            return end
        pos = dpi_txt_run(buf, pos, end, self._max_line, &self._trunk, &self.lines,
                          self._cand_num.v, self._cand_line.v, self._cand_digits.v, &n, room)
        self._cand_num.n = self._cand_line.n = n
        self._cand_digits.n = 2 * n
        return pos

    cdef inline unsigned char* _digits_slot(self) noexcept nogil:
        """Room for the next candidate's 16-byte digit record (NULL when out of memory)."""
        if dpi_vec_reserve(&self._cand_digits, self._cand_digits.n + 2) < 0:
            self._oom = True
            return NULL
        return <unsigned char*>(self._cand_digits.v + self._cand_digits.n)

    cdef inline void _candidate(self, _ing_u64 packed, Py_ssize_t line_no) noexcept nogil:
        """Record a valid number whose digit record was written by _digits_slot's pointer."""
        self._cand_digits.n += 2
        if dpi_vec_push(&self._cand_num, packed) < 0 or \
                dpi_vec_push(&self._cand_line, <_ing_u64>line_no) < 0:
            self._oom = True
        if self._csv and dpi_vec_push(&self._cand_span, self._var_spans.n) < 0:
            self._oom = True

    cdef inline void _txt_record(self, const unsigned char* buf, Py_ssize_t pos,
                                 Py_ssize_t t) noexcept nogil:
        cdef _ing_u64 packed = 0
        cdef unsigned char* record = self._digits_slot()
        cdef int code
        if record != NULL:
            code = dpi_normalize(buf, pos, t, &self._trunk, &packed, record)  # sets packed first
            self._txt_result(buf, pos, t, code, packed)

    cdef inline void _txt_result(self, const unsigned char* buf, Py_ssize_t pos, Py_ssize_t t,
                                 int code, _ing_u64 packed) noexcept nogil:
        """Accept the line's number (its digit record is in place) or record its error."""
        if code == 0:
            self._candidate(packed, self.lines + 1)
            return
        if code == 1 and dpi_bad_encoding(buf, pos, t):
            code = _ING_BAD_ENCODING
        self._error(self.lines + 1, code)

    cdef inline void _push_field(self, Py_ssize_t start, Py_ssize_t stop, bint escaped) noexcept nogil:
        if dpi_vec_push(&self._fields, <_ing_u64>start) < 0 or \
                dpi_vec_push(&self._fields, <_ing_u64>stop) < 0 or \
                dpi_vec_push(&self._fields, <_ing_u64>escaped) < 0:
            self._oom = True

    cdef Py_ssize_t _csv_record(self, const unsigned char* buf, Py_ssize_t pos, Py_ssize_t t,
                                Py_ssize_t end, bint eof) noexcept nogil:
        cdef Py_ssize_t line_no = self.lines + 1, rec_end, i, d, best
        cdef Py_ssize_t counts[3]
        cdef int delims[3]
        cdef bint malformed = False
        if self._delim < 0:
            if t - pos == 5 and (buf[pos] | 0x20) == 115 and (buf[pos + 1] | 0x20) == 101 \
                    and (buf[pos + 2] | 0x20) == 112 and buf[pos + 3] == 61 \
                    and (buf[pos + 4] == 44 or buf[pos + 4] == 59 or buf[pos + 4] == 9
                         or buf[pos + 4] == 124):
                self._delim = buf[pos + 4]  # Excel's "sep=;" line names the delimiter
                return t
            counts[0] = dpi_count_unquoted(buf, pos, t, 44)
            counts[1] = dpi_count_unquoted(buf, pos, t, 59)
            counts[2] = dpi_count_unquoted(buf, pos, t, 9)
            delims[0] = 44
            delims[1] = 59
            delims[2] = 9
            best = 0
            for i in range(1, 3):
                if counts[i] > counts[best]:
                    best = i
            self._delim = delims[best] if counts[best] else 44
        self._fields.n = 0
        if dpi_find_byte(buf, pos, t, _ING_QUOTE) < 0:
            rec_end = t
            i = pos
            while True:
                d = dpi_find_byte(buf, i, t, <unsigned char>self._delim)
                if d < 0:
                    self._push_field(i, t, False)
                    break
                self._push_field(i, d, False)
                i = d + 1
        else:
            rec_end = self._scan_quoted(buf, pos, end, eof, &malformed)
            if rec_end == _ING_WAIT:
                if end - pos > self._max_line:
                    self._error(line_no, _ING_TOO_LONG_LINE)
                    return t
                return _ING_WAIT
            if rec_end - pos > self._max_line:
                self._error(line_no, _ING_TOO_LONG_LINE)
                return t
            self.lines += dpi_count_eols(buf, pos, rec_end)
        if dpi_bad_encoding(buf, pos, rec_end):
            self._error(line_no, _ING_BAD_ENCODING)
        elif malformed:
            self._error(line_no, _ING_MALFORMED)
        elif self._phone_index < 0:
            self._pend_end = rec_end
            self._pend_line = line_no
            return _ING_NEED_COLUMNS
        else:
            self._csv_fields(buf, line_no)
        return rec_end

    cdef Py_ssize_t _scan_quoted(self, const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end,
                                 bint eof, bint* malformed) noexcept nogil:
        """RFC 4180 scan of the record at ``pos``: its end, or _ING_WAIT if incomplete.
        A malformed record ends at the first line terminator after the fault."""
        cdef Py_ssize_t i = pos, start, q, e, stop, d, j
        cdef bint escaped
        cdef unsigned char c
        cdef unsigned char delim = <unsigned char>self._delim
        while True:
            if i < end and buf[i] == _ING_QUOTE:
                start = i + 1
                escaped = False
                while True:
                    q = dpi_find_byte(buf, start, end, _ING_QUOTE)
                    if q < 0:  # unterminated: malformed, up to the terminator after the quote
                        if eof:
                            malformed[0] = True
                            e = dpi_find_eol(buf, i + 1, end)
                            return end if e < 0 else e
                        return _ING_WAIT
                    if q + 1 < end and buf[q + 1] == _ING_QUOTE:
                        escaped = True
                        start = q + 2
                        continue
                    if q + 1 >= end and not eof:
                        return _ING_WAIT
                    break
                self._push_field(i + 1, q, escaped)
                i = q + 1
                if i >= end:
                    return end
                c = buf[i]
                if c == delim:
                    i += 1
                    continue
                if c == _ING_CR or c == _ING_LF:
                    return i
            else:
                e = dpi_find_eol(buf, i, end)
                stop = end if e < 0 else e
                d = dpi_find_byte(buf, i, stop, delim)
                j = stop if d < 0 else d
                if dpi_find_byte(buf, i, j, _ING_QUOTE) < 0:
                    self._push_field(i, j, False)
                    if d >= 0:
                        i = d + 1
                        continue
                    if e < 0 and not eof:
                        return _ING_WAIT
                    return stop
            e = dpi_find_eol(buf, i, end)
            if e < 0:
                if eof:
                    malformed[0] = True
                    return end
                return _ING_WAIT
            malformed[0] = True
            return e

    cdef void _csv_fields(self, const unsigned char* buf, Py_ssize_t line_no) noexcept nogil:
        cdef Py_ssize_t nfields = <Py_ssize_t>(self._fields.n // 3), i
        cdef _ing_u64* f = self._fields.v
        cdef _ing_u64 packed = 0
        cdef int code
        if nfields != self._field_count:
            self._error(line_no, _ING_MALFORMED)
            return
        cdef unsigned char* record = self._digits_slot()
        if record == NULL:
            return
        i = self._phone_index
        code = dpi_normalize(buf, <Py_ssize_t>f[3 * i], <Py_ssize_t>f[3 * i + 1], &self._trunk,
                             &packed, record)
        if code:
            self._error(line_no, code)
            return
        self._candidate(packed, line_no)
        for i in range(nfields):
            if i == self._phone_index:
                continue
            if dpi_vec_push(&self._var_spans, f[3 * i]) < 0 or \
                    dpi_vec_push(&self._var_spans, f[3 * i + 1]) < 0 or \
                    dpi_vec_push(&self._var_spans, f[3 * i + 2]) < 0:
                self._oom = True

    # ---------------------------------------------------------------- with the GIL

    cdef bint _setup_columns(self, const unsigned char* buf) except -1:
        """Resolve header and phone column from the first well-formed record; True if it was
        the header (consumed)."""
        cdef Py_ssize_t nfields = <Py_ssize_t>(self._fields.n // 3), i
        cdef _ing_u64* f = self._fields.v
        fields = [_ing_field_bytes(buf, f[3 * i], f[3 * i + 1], f[3 * i + 2])
                  for i in range(nfields)]
        cdef Py_ssize_t first_numeric = -1
        for i in range(nfields):
            if dpi_digit_count(buf, <Py_ssize_t>f[3 * i], <Py_ssize_t>f[3 * i + 1]) >= _ING_HEADER_DIGITS:
                first_numeric = i
                break
        if self.header is not None:  # the header named no phone column: this record picks it
            if nfields == self._field_count:  # (else it is malformed, and the next one)
                self._set_columns(list(self.header), first_numeric if first_numeric >= 0 else 0)
            return False
        has_header = self._has_header
        if has_header is None:
            has_header = first_numeric < 0
        names = ([x.decode("utf-8").strip(" \t") for x in fields] if has_header
                 else [f"col{i}" for i in range(nfields)])
        wanted = self._phone_column
        if isinstance(wanted, int):
            if wanted >= nfields:
                raise ValueError(f"phone column {wanted} is out of range: the file has "
                                 f"{nfields} columns")
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
                self._field_count = nfields
                return True
            index = found
        else:
            index = first_numeric if first_numeric >= 0 else 0
        self._set_columns(names, index)
        if has_header:
            self.header = tuple(names)
        return bool(has_header)

    cdef int _set_columns(self, list names, Py_ssize_t index) except -1:
        self._phone_index = index
        self._field_count = len(names)
        self.variable_names = variable_names(names, index)
        return 0

    cdef int _finish_run(self, const unsigned char* buf) except -1:
        """Dedupe this run's candidates in file order, hash the survivors, flush errors, and
        (CSV) build the variables of the survivors."""
        cdef size_t n = self._cand_num.n, i, kept = 0, base = self._batch_n
        cdef bint oom = False
        cdef _ing_u64* numbers
        cdef _ing_u64* lines
        cdef unsigned char* hashes
        if n:
            self._reserve_batch(base + n)
        numbers = <_ing_u64*>self._batch_numbers.data.as_ulonglongs
        lines = <_ing_u64*>self._batch_lines.data.as_ulonglongs
        hashes = <unsigned char*>PyBytes_AS_STRING(<object>self._batch_hashes) if n else NULL
        with nogil:
            if n:
                kept = dpi_dedupe(&self._seen, self._cand_num.v, self._cand_line.v, n,
                                  numbers + base, lines + base, self._cand_digits.v,
                                  self._cand_span.v if self._csv else NULL)
            if kept == <size_t>-1:
                oom = True
                kept = 0
            self.duplicates += n - kept
            self.valid += kept
            self._batch_n = base + kept
            if kept:
                dpi_hash_many(self._k0, self._k1, <unsigned char*>self._cand_digits.v, kept,
                              hashes + 16 * base)
        if oom or self._oom:
            raise MemoryError("recipient parser out of memory")
        for i in range(self._err_line.n):
            self.errors.append((int(self._err_line.v[i]), REASONS[self._err_code.v[i] - 1]))
        self._errors_flushed += <Py_ssize_t>self._err_line.n
        self._err_line.n = self._err_code.n = 0
        if self._csv and kept:
            self._build_variables(buf, kept)
        return 0

    cdef void _build_variables(self, const unsigned char* buf, size_t kept) except *:
        """One tuple of str per kept CSV recipient, built in place and untracked by the cyclic
        GC (it holds only str, so it can never be in a cycle; tracked, every young-generation
        collection would walk the batch's tuples again)."""
        cdef size_t r, j, first, width = <size_t>len(self.variable_names)
        cdef _ing_u64* s = self._var_spans.v
        cdef tuple row
        cdef list out = self._variables
        for r in range(kept):
            first = <size_t>self._cand_span.v[r]
            row = PyTuple_New(<Py_ssize_t>width)
            for j in range(width):
                value = _ing_field_str(buf, s[first + 3 * j], s[first + 3 * j + 1],
                                       s[first + 3 * j + 2])
                Py_INCREF(value)
                PyTuple_SET_ITEM(row, <Py_ssize_t>j, value)
            PyObject_GC_UnTrack(<void*>row)
            out.append(row)


cdef inline bint _ing_bom_prefix(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end) noexcept nogil:
    cdef const unsigned char* bom = b"\xef\xbb\xbf"
    cdef Py_ssize_t i
    for i in range(end - pos):
        if buf[pos + i] != bom[i]:
            return False
    return True


cdef bytes _ing_field_bytes(const unsigned char* buf, _ing_u64 start, _ing_u64 stop, _ing_u64 escaped):
    raw = _ing_bytes(<const char*>buf + start, <Py_ssize_t>(stop - start))
    return raw.replace(b'""', b'"') if escaped else raw


cdef str _ing_field_str(const unsigned char* buf, _ing_u64 start, _ing_u64 stop, _ing_u64 escaped):
    if escaped:
        return _ing_field_bytes(buf, start, stop, escaped).decode("utf-8")
    return _ing_decode(<const char*>buf + start, <Py_ssize_t>(stop - start), NULL)


cdef _ing_carray.array _ING_Q_TEMPLATE = _ing_array_module.array("Q")
