# The C level of the recipient fast path (hashing is in _fp_hash_c.pxi): growable arrays, the
# dedupe set, line scanning (SSE2 over 32 bytes for the common short line) and phone
# normalisation. Plain C in a verbatim block, with
# the Cython declarations after it. Included by _fastpath.pxd, so every .pxi of the module sees
# it and another Cython module can ``cimport`` these names from ``dispatch._fastpath`` (the
# static C functions are then compiled into that module too).
#
# The rules these functions implement are specified in dispatch/_reference/ingest.py.

from libc.stdint cimport uint64_t as _ing_u64

cdef extern from *:
    """
    /* needs _fp_hash_c.pxi first: stdint/string, dpi_loadu64/dpi_storeu64, DPI_LITTLE_ENDIAN */
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif

    /* ---- growable arrays (no Python objects; -1 on out of memory) ---- */
    typedef struct { uint64_t *v; size_t n, cap; } dpi_vec;
    static int dpi_vec_reserve(dpi_vec *a, size_t need) {
        size_t cap;
        uint64_t *p;
        if (need <= a->cap) return 0;
        cap = a->cap ? a->cap : 256;
        while (cap < need) cap *= 2;
        p = (uint64_t *)realloc(a->v, cap * sizeof(uint64_t));
        if (!p) return -1;
        a->v = p; a->cap = cap;
        return 0;
    }
    static inline int dpi_vec_push(dpi_vec *a, uint64_t x) {
        if (a->n == a->cap && dpi_vec_reserve(a, a->n + 1) < 0) return -1;
        a->v[a->n++] = x;
        return 0;
    }
    static void dpi_vec_free(dpi_vec *a) { free(a->v); a->v = NULL; a->n = a->cap = 0; }

    /* ---- dedupe set: open addressing over packed numbers (never 0: valid numbers have
       10+ digits and no leading zero), linear probing, load <= 3/4: 11-22 bytes per unique
       recipient (probes stay within a cache line or two; a lower load cost more in growth).
       The slot is the top bits of a multiplicative hash, so doubling the table sends slot i
       to 2i or 2i+1: rehashing in slot order writes the new table almost sequentially
       instead of at random (that made growth cost 3x the inserts themselves). ---- */
    typedef struct { uint64_t *slots; size_t mask, count; int shift; } dpi_set;
    static inline size_t dpi_slot(uint64_t key, int shift) {
        return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> shift);
    }
    /* A zeroed table. Big ones come straight from mmap (already zero: no second clearing
       pass) and are asked to be transparent huge pages: random probes into tens of MB
       otherwise pay a TLB miss each. */
    #define DPI_BIG_TABLE_BYTES ((size_t)2 << 20)
    static uint64_t *dpi_table_alloc(size_t cap) {
        size_t bytes = cap * sizeof(uint64_t);
    #if defined(__linux__) && defined(MAP_ANONYMOUS)
        if (bytes >= DPI_BIG_TABLE_BYTES) {
            void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) return NULL;
    #if defined(MADV_HUGEPAGE)
            madvise(p, bytes, MADV_HUGEPAGE);
    #endif
            return (uint64_t *)p;
        }
    #endif
        return (uint64_t *)calloc(cap, sizeof(uint64_t));
    }
    static void dpi_table_free(uint64_t *slots, size_t cap) {
        if (!slots) return;
    #if defined(__linux__) && defined(MAP_ANONYMOUS)
        if (cap * sizeof(uint64_t) >= DPI_BIG_TABLE_BYTES) { munmap(slots, cap * sizeof(uint64_t)); return; }
    #endif
        free(slots);
    }
    static int dpi_set_grow(dpi_set *s) {
        size_t cap = s->slots ? (s->mask + 1) * 2 : 1024, i, j;
        int shift = s->slots ? s->shift - 1 : 64 - 10;
        uint64_t *slots = dpi_table_alloc(cap);
        if (!slots) return -1;
        if (s->slots) {
            for (i = 0; i <= s->mask; i++) {
                if (!s->slots[i]) continue;
                j = dpi_slot(s->slots[i], shift);
                while (slots[j]) j = (j + 1) & (cap - 1);
                slots[j] = s->slots[i];
            }
            dpi_table_free(s->slots, s->mask + 1);
        }
        s->slots = slots; s->mask = cap - 1; s->shift = shift;
        return 0;
    }
    /* Room for count numbers without growing (a capacity hint; -1 out of memory). */
    static int dpi_set_reserve(dpi_set *s, size_t count) {
        while (!s->slots || count * 4 > (s->mask + 1) * 3)
            if (dpi_set_grow(s) < 0) return -1;
        return 0;
    }
    static inline void dpi_set_prefetch(const dpi_set *s, uint64_t key) {
        if (s->slots) __builtin_prefetch(&s->slots[dpi_slot(key, s->shift)]);
    }
    /* 1 if added, 0 if already there, -1 out of memory */
    static inline int dpi_set_add(dpi_set *s, uint64_t key) {
        size_t i;
        if (!s->slots || (s->count + 1) * 4 > (s->mask + 1) * 3) {
            if (dpi_set_grow(s) < 0) return -1;
        }
        i = dpi_slot(key, s->shift);
        for (;;) {
            uint64_t v = s->slots[i];
            if (v == key) return 0;
            if (!v) { s->slots[i] = key; s->count++; return 1; }
            i = (i + 1) & s->mask;
        }
    }
    /* Dedupe n candidates in file order (the first occurrence of a number wins): the kept ones go
       to out_num/out_line, and their 16-byte records (and CSV spans, when given) are compacted in
       place. Returns how many were kept, or (size_t)-1 when out of memory. The set is grown for
       all n first, so the slot map is fixed for the loop: the probes then run on locals, with the
       slot of candidate i + 16 prefetched (the table is far bigger than the caches). */
    #define DPI_PREFETCH_AHEAD 16
    static size_t dpi_dedupe(dpi_set *s, const uint64_t *nums, const uint64_t *lines, size_t n,
                             uint64_t *out_num, uint64_t *out_line, uint64_t *records,
                             uint64_t *spans) {
        uint64_t *slots;
        size_t mask, i, j, kept = 0;
        int shift;
        while (!s->slots || (s->count + n) * 4 > (s->mask + 1) * 3)
            if (dpi_set_grow(s) < 0) return (size_t)-1;
        slots = s->slots; mask = s->mask; shift = s->shift;
        for (i = 0; i < n; i++) {
            const uint64_t key = nums[i];
            if (i + DPI_PREFETCH_AHEAD < n)
                __builtin_prefetch(&slots[dpi_slot(nums[i + DPI_PREFETCH_AHEAD], shift)]);
            for (j = dpi_slot(key, shift); slots[j] && slots[j] != key; j = (j + 1) & mask) {}
            if (slots[j]) continue;                    /* a duplicate */
            slots[j] = key;
            out_num[kept] = key;
            out_line[kept] = lines[i];
            if (spans) spans[kept] = spans[i];
            records[2 * kept] = records[2 * i];
            records[2 * kept + 1] = records[2 * i + 1];
            kept++;
        }
        s->count += kept;
        return kept;
    }
    static void dpi_set_free(dpi_set *s) {
        dpi_table_free(s->slots, s->mask + 1);
        s->slots = NULL; s->mask = s->count = 0;
    }

    /* ---- scanning ---- */
    /* Next CR or LF in [pos, end), or -1. Short lines: a byte loop; past 256 bytes (a long
       line being skipped) two memchr, the CR one bounded by the LF found. */
    static inline ptrdiff_t dpi_find_eol(const unsigned char *b, ptrdiff_t pos, ptrdiff_t end) {
        ptrdiff_t stop = end - pos > 256 ? pos + 256 : end, lim;
        const unsigned char *lf, *cr;
        for (; pos < stop; pos++) {
            unsigned char c = b[pos];
            if (c <= 13 && (c == 10 || c == 13)) return pos;
        }
        if (pos >= end) return -1;
        lf = memchr(b + pos, 10, (size_t)(end - pos));
        lim = lf ? lf - b : end;
        cr = lim > pos ? memchr(b + pos, 13, (size_t)(lim - pos)) : NULL;
        return cr ? cr - b : (lf ? lf - b : -1);
    }
    static inline int dpi_is_blank(const unsigned char *b, ptrdiff_t pos, ptrdiff_t end) {
        for (; pos < end; pos++) if (b[pos] != 32 && b[pos] != 9) return 0;
        return 1;
    }
    static ptrdiff_t dpi_count_eols(const unsigned char *b, ptrdiff_t pos, ptrdiff_t end) {
        ptrdiff_t n = 0;
        for (; pos < end; pos++) {
            if (b[pos] == 10) n++;
            else if (b[pos] == 13) { n++; if (pos + 1 < end && b[pos + 1] == 10) pos++; }
        }
        return n;
    }
    /* Count of c in [pos, end) outside double quotes: each '"' toggles (RFC 4180 quoting; a
       doubled quote inside a quoted field toggles twice). A quoted field's text is data. */
    static inline ptrdiff_t dpi_count_unquoted(const unsigned char *b, ptrdiff_t pos,
                                               ptrdiff_t end, unsigned char c) {
        ptrdiff_t n = 0;
        int quoted = 0;
        for (; pos < end; pos++) {
            if (b[pos] == '"') quoted ^= 1;
            else n += !quoted && b[pos] == c;
        }
        return n;
    }
    static inline ptrdiff_t dpi_find_byte(const unsigned char *b, ptrdiff_t pos, ptrdiff_t end,
                                          unsigned char c) {
        const unsigned char *p = pos < end ? memchr(b + pos, c, (size_t)(end - pos)) : NULL;
        return p ? p - b : -1;
    }
    static inline ptrdiff_t dpi_digit_count(const unsigned char *b, ptrdiff_t pos, ptrdiff_t end) {
        ptrdiff_t n = 0;
        for (; pos < end; pos++) n += (unsigned)(b[pos] - '0') < 10;
        return n;
    }

    /* Strict UTF-8 as Python's bytes.decode (no overlongs, surrogates, > U+10FFFF), and no NUL. */
    static int dpi_bad_encoding(const unsigned char *b, ptrdiff_t pos, ptrdiff_t end) {
        while (pos < end) {
            unsigned char c = b[pos];
            int more;
            unsigned char lo = 0x80, hi = 0xBF;
            if (c == 0) return 1;
            if (c < 0x80) { pos++; continue; }
            if (c >= 0xC2 && c <= 0xDF) more = 1;
            else if (c == 0xE0) { more = 2; lo = 0xA0; }
            else if (c == 0xED) { more = 2; hi = 0x9F; }
            else if (c >= 0xE1 && c <= 0xEF) more = 2;
            else if (c == 0xF0) { more = 3; lo = 0x90; }
            else if (c == 0xF4) { more = 3; hi = 0x8F; }
            else if (c >= 0xF1 && c <= 0xF3) more = 3;
            else return 1;
            pos++;
            if (pos >= end || b[pos] < lo || b[pos] > hi) return 1;
            for (pos++, more--; more > 0; more--, pos++)
                if (pos >= end || (b[pos] & 0xC0) != 0x80) return 1;
        }
        return 0;
    }

    /* Normalise a phone field to a packed E.164 number. Returns 0 and sets *out, or
       1 + the index of the reason in REASONS (see the reference for the rules). */
    typedef struct { int on, prefix_len, national_len, cc_len; unsigned char prefix[4], cc[3]; } dpi_trunk;
    /* The value of k (1..8) ASCII digits at p, p[0..7] readable: the eight bytes of one word
       combined pairwise by three multiplies instead of k dependent multiply-adds. */
    static inline uint64_t dpi_swar8(const unsigned char *p, int k) {
        uint64_t v = (dpi_loadu64(p) - 0x3030303030303030ULL) << (8 * (8 - k));
        v = (v * 10 + (v >> 8)) & 0x00FF00FF00FF00FFULL;
        v = (v * 100 + (v >> 16)) & 0x0000FFFF0000FFFFULL;
        return (v * 10000 + (v >> 32)) & 0xFFFFFFFFULL;
    }
    /* The value of len (10..15) ASCII digits at p. */
    static inline uint64_t dpi_digits_value(const unsigned char *p, int len) {
    #if defined(DPI_LITTLE_ENDIAN)
        return dpi_swar8(p, len - 8) * 100000000ULL + dpi_swar8(p + len - 8, 8);
    #else
        uint64_t v = 0;
        int i;
        for (i = 0; i < len; i++) v = v * 10 + (uint64_t)(p[i] - '0');
        return v;
    #endif
    }
    /* The prefix rules and length checks on the collected digits (n may exceed 24: only the
       first 24 were stored; d[0..n-1] readable). Shared by the field normaliser and the txt line
       scans. The record gets the digits (two overlapping 8-byte stores) and their count. */
    static inline int dpi_finish_digits(const unsigned char *d, int n, int plus,
                                        const dpi_trunk *trunk, uint64_t *out,
                                        unsigned char *record) {
        unsigned char t[32];
        const unsigned char *digits = d;
        int len;
        if (n > 24) return 3;                          /* too_long, whatever the prefix */
        len = n;
        if (!plus) {
            if (n >= 2 && d[0] == '0' && d[1] == '0') { digits = d + 2; len = n - 2; }
            else if (trunk->on && n == trunk->national_len &&
                     memcmp(d, trunk->prefix, (size_t)trunk->prefix_len) == 0) {
                memcpy(t, trunk->cc, (size_t)trunk->cc_len);
                memcpy(t + trunk->cc_len, d + trunk->prefix_len, (size_t)(n - trunk->prefix_len));
                digits = t;
                len = trunk->cc_len + n - trunk->prefix_len;
            }
        }
        if (len < 10) return 2;                        /* too_short */
        if (len > 15) return 3;                        /* too_long */
        if (digits[0] == '0') return 4;                /* bad_country_code */
        *out = dpi_digits_value(digits, len);
        if (record) {
            dpi_storeu64(record, dpi_loadu64(digits));
            dpi_storeu64(record + len - 8, dpi_loadu64(digits + len - 8));
            record[15] = (unsigned char)len;
        }
        return 0;
    }
    static int dpi_normalize(const unsigned char *b, ptrdiff_t pos, ptrdiff_t end,
                             const dpi_trunk *trunk, uint64_t *out, unsigned char *record) {
        unsigned char d[24];
        int n = 0, plus, dots = 0, dot_at = 0, other = 0, nonzero_after = 0;
        /* spaces, tabs and no-break spaces (UTF-8 C2 A0) around the number are trimmed */
        for (;;) {
            if (pos < end && (b[pos] == 32 || b[pos] == 9)) pos++;
            else if (end - pos >= 2 && b[pos] == 0xC2 && b[pos + 1] == 0xA0) pos += 2;
            else break;
        }
        for (;;) {
            if (end > pos && (b[end - 1] == 32 || b[end - 1] == 9)) end--;
            else if (end - pos >= 2 && b[end - 2] == 0xC2 && b[end - 1] == 0xA0) end -= 2;
            else break;
        }
        if (pos == end) return 5;                      /* empty_phone */
        plus = b[pos] == '+';
        if (plus) pos++;
        for (; pos < end; pos++) {
            unsigned char c = b[pos];
            if ((unsigned)(c - '0') < 10) {
                if (n < 24) d[n] = c;
                n++;
                nonzero_after |= dots && c != '0';
            } else if (c == '.') { dots++; dot_at = n; }
            else if (c == ' ' || c == '-' || c == '(' || c == ')') other = 1;
            else if (c == 0xC2 && pos + 1 < end && b[pos + 1] == 0xA0) { other = 1; pos++; }
            else return 1;
        }
        /* digits "." zeros: a spreadsheet's float rendering ("79123456789.0"), read without
           the fraction (the reference's rule) */
        if (dots == 1 && !other && !nonzero_after && dot_at > 0 && dot_at < n) n = dot_at;
        return dpi_finish_digits(d, n, plus, trunk, out, record);
    }

    /* A whole txt line in one pass: find its terminator (CR or LF before lim) and normalise it
       as dpi_normalize would its space/tab-trimmed content. Returns that code, or DPI_BLANK for
       a line of spaces/tabs; *eol = the terminator, or -1 if none before lim (then the caller
       takes the general path and nothing else here is meaningful). */
    #define DPI_BLANK (-2)
    static inline int dpi_txt_line(const unsigned char *b, ptrdiff_t pos, ptrdiff_t lim,
                                   const dpi_trunk *trunk, uint64_t *out, unsigned char *record,
                                   ptrdiff_t *eol) {
        unsigned char d[24];
        int n = 0, plus = 0, started = 0, invalid = 0, tab_after = 0, dot = 0, nbsp = 0;
        const ptrdiff_t start = pos;
        for (; pos < lim; pos++) {
            unsigned char c = b[pos];
            if ((unsigned)(c - '0') < 10) {
                if (tab_after) invalid = 1;
                if (n < 24) d[n] = c;
                n++;
                started = 1;
            } else if (c == 10 || c == 13) {
                *eol = pos;
                if (!started && !nbsp) return DPI_BLANK;
                if (invalid) return 1;
                if (dot | nbsp)  /* the "." rule and no-break spaces: dpi_normalize's */
                    return dpi_normalize(b, start, pos, trunk, out, record);
                return dpi_finish_digits(d, n, plus, trunk, out, record);
            } else if (c == ' ') {
                continue;
            } else if (c == 9) {
                if (started) tab_after = 1;
            } else if (c == '-' || c == '.' || c == '(' || c == ')') {
                if (tab_after) invalid = 1;
                dot |= c == '.';
                started = 1;
            } else if (c == '+' && !started) {
                plus = 1;
                started = 1;
            } else if (c == 0xC2 && pos + 1 < lim && b[pos + 1] == 0xA0) {
                nbsp = 1;  /* a space (not "started": a '+' may follow) */
                pos++;
            } else {
                invalid = 1;
                started = 1;
            }
        }
        *eol = -1;
        return 0;
    }
    #define DPI_SLOW (-3)
    #if defined(__SSE2__)
    static inline uint32_t dpi_mask32(__m128i lo, __m128i hi) {
        return (uint32_t)_mm_movemask_epi8(lo) | ((uint32_t)_mm_movemask_epi8(hi) << 16);
    }
    #define DPI_EQ(x, c) _mm_cmpeq_epi8((x), _mm_set1_epi8((char)(c)))
    #define DPI_MASK_EQ(c) dpi_mask32(DPI_EQ(x0, c), DPI_EQ(x1, c))
    /* dpi_txt_line for a line that ends within the 32 bytes at b + pos (all readable): the bytes
       are classified sixteen at a time (SSE2, in every x86-64), the digits used in place when they
       are one run (or gathered when separators split them). Gives exactly dpi_txt_line's answer,
       or DPI_SLOW for what it leaves to the byte loop: longer lines, tabs. */
    static inline int dpi_txt_line_fast(const unsigned char *b, ptrdiff_t pos, ptrdiff_t lim,
                                        const dpi_trunk *trunk, uint64_t *out,
                                        unsigned char *record, ptrdiff_t *eol) {
        const __m128i x0 = _mm_loadu_si128((const __m128i *)(b + pos));
        const __m128i x1 = _mm_loadu_si128((const __m128i *)(b + pos + 16));
        const __m128i zero = _mm_set1_epi8('0'), nine = _mm_set1_epi8(9);
        __m128i d0, d1;
        uint32_t ends, valid, digit, space, sep, plus, tab, m;
        unsigned char gathered[32];
        const unsigned char *src;
        int e, n, s;
        ends = dpi_mask32(_mm_or_si128(DPI_EQ(x0, 10), DPI_EQ(x0, 13)),
                          _mm_or_si128(DPI_EQ(x1, 10), DPI_EQ(x1, 13)));
        if (!ends) return DPI_SLOW;
        e = __builtin_ctz(ends);
        if (e >= lim - pos) return DPI_SLOW;
        valid = (1u << e) - 1;
        d0 = _mm_sub_epi8(x0, zero); d1 = _mm_sub_epi8(x1, zero);
        digit = dpi_mask32(_mm_cmpeq_epi8(_mm_min_epu8(d0, nine), d0),
                           _mm_cmpeq_epi8(_mm_min_epu8(d1, nine), d1)) & valid;
        space = DPI_MASK_EQ(' ') & valid;
        sep = dpi_mask32(_mm_or_si128(_mm_or_si128(DPI_EQ(x0, '-'), DPI_EQ(x0, '.')),
                                      _mm_or_si128(DPI_EQ(x0, '('), DPI_EQ(x0, ')'))),
                         _mm_or_si128(_mm_or_si128(DPI_EQ(x1, '-'), DPI_EQ(x1, '.')),
                                      _mm_or_si128(DPI_EQ(x1, '('), DPI_EQ(x1, ')')))) & valid;
        plus = DPI_MASK_EQ('+') & valid;
        tab = DPI_MASK_EQ(9) & valid;
        *eol = pos + e;
        if (valid & ~(digit | space | sep | plus | tab))              /* invalid_characters, */
            return (DPI_MASK_EQ(0xC2) & valid) ? DPI_SLOW : 1;       /* or a no-break space */
        if (tab | (DPI_MASK_EQ('.') & valid)) return DPI_SLOW;       /* rare: the byte loop */
        if (!(valid & ~space)) return DPI_BLANK;
        if (plus) {    /* one '+', before anything but spaces */
            if ((plus & (plus - 1)) || (space & (plus - 1)) != plus - 1) return 1;
        }
        if (!digit) return dpi_finish_digits(gathered, 0, plus != 0, trunk, out, record);
        s = __builtin_ctz(digit);
        m = digit >> s;
        if ((m & (m + 1)) == 0) {          /* one run of digits: used in place */
            n = __builtin_ctz(~m);
            src = b + pos + s;
        } else {                           /* separators between digits: gather them */
            for (m = digit, n = 0; m; m &= m - 1) gathered[n++] = b[pos + __builtin_ctz(m)];
            src = gathered;
        }
        return dpi_finish_digits(src, n, plus != 0, trunk, out, record);
    }
    #endif

    /* dpi_txt_line with the SSE2 shortcut when 32 bytes are left in the buffer (end). */
    static inline int dpi_txt_line_any(const unsigned char *b, ptrdiff_t pos, ptrdiff_t lim,
                                       ptrdiff_t end, const dpi_trunk *trunk, uint64_t *out,
                                       unsigned char *record, ptrdiff_t *eol) {
    #if defined(__SSE2__)
        if (end - pos >= 32) {
            int code = dpi_txt_line_fast(b, pos, lim, trunk, out, record, eol);
            if (code != DPI_SLOW) return code;
        }
    #endif
        return dpi_txt_line(b, pos, lim, trunk, out, record, eol);
    }
    /* The common txt lines in a row, with no call per line: from pos, while more than 32 bytes
       are left and there is room, every line that dpi_txt_line_fast decides as blank or as a valid
       number (appended to nums/lines/records). Stops at anything else (an invalid line, a long
       line, a tab) and returns its start for the general path; *line_no counts the lines passed. */
    static ptrdiff_t dpi_txt_run(const unsigned char *b, ptrdiff_t pos, ptrdiff_t end,
                                 ptrdiff_t max_line, const dpi_trunk *trunk, long long *line_no,
                                 uint64_t *nums, uint64_t *lines, uint64_t *records,
                                 size_t *count, size_t room) {
    #if defined(__SSE2__)
        size_t k = *count;
        long long ln = *line_no;
        ptrdiff_t eol, lim;
        uint64_t v;
        int code;
        while (end - pos > 32 && k < room) {
            lim = end - pos > max_line + 1 ? pos + max_line + 1 : end;
            code = dpi_txt_line_fast(b, pos, lim, trunk, &v, (unsigned char *)(records + 2 * k), &eol);
            if (code == 0) { nums[k] = v; lines[k] = (uint64_t)(ln + 1); k++; }
            else if (code != DPI_BLANK) break;
            ln++;
            pos = eol + 1 + (b[eol] == 13 && b[eol + 1] == 10);   /* eol + 1 < end here */
        }
        *count = k; *line_no = ln;
    #endif
        return pos;
    }
    """
    ctypedef struct dpi_vec:
        _ing_u64* v
        size_t n
        size_t cap
    ctypedef struct dpi_set:
        size_t count
    ctypedef struct dpi_trunk:
        int on
        int prefix_len
        int national_len
        int cc_len
        unsigned char prefix[4]
        unsigned char cc[3]
    int dpi_vec_reserve(dpi_vec* a, size_t need) noexcept nogil
    int dpi_vec_push(dpi_vec* a, _ing_u64 x) noexcept nogil
    void dpi_vec_free(dpi_vec* a) noexcept nogil
    void dpi_set_prefetch(const dpi_set* s, _ing_u64 key) noexcept nogil
    int dpi_set_reserve(dpi_set* s, size_t count) noexcept nogil
    int dpi_set_add(dpi_set* s, _ing_u64 key) noexcept nogil
    void dpi_set_free(dpi_set* s) noexcept nogil
    size_t dpi_dedupe(dpi_set* s, const _ing_u64* nums, const _ing_u64* lines, size_t n,
                      _ing_u64* out_num, _ing_u64* out_line, _ing_u64* records,
                      _ing_u64* spans) noexcept nogil
    Py_ssize_t dpi_txt_run(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end,
                           Py_ssize_t max_line, const dpi_trunk* trunk, long long* line_no,
                           _ing_u64* nums, _ing_u64* lines, _ing_u64* records, size_t* count,
                           size_t room) noexcept nogil
    Py_ssize_t dpi_find_eol(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end) noexcept nogil
    int dpi_is_blank(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end) noexcept nogil
    Py_ssize_t dpi_count_eols(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end) noexcept nogil
    Py_ssize_t dpi_count_unquoted(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end,
                                  unsigned char c) noexcept nogil
    Py_ssize_t dpi_find_byte(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end,
                             unsigned char c) noexcept nogil
    Py_ssize_t dpi_digit_count(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end) noexcept nogil
    int dpi_bad_encoding(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end) noexcept nogil
    int dpi_txt_line(const unsigned char* b, Py_ssize_t pos, Py_ssize_t lim, const dpi_trunk* trunk,
                     _ing_u64* out, unsigned char* record, Py_ssize_t* eol) noexcept nogil
    int dpi_txt_line_any(const unsigned char* b, Py_ssize_t pos, Py_ssize_t lim, Py_ssize_t end,
                         const dpi_trunk* trunk, _ing_u64* out, unsigned char* record,
                         Py_ssize_t* eol) noexcept nogil
    int DPI_BLANK
    int dpi_normalize(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end,
                      const dpi_trunk* trunk, _ing_u64* out, unsigned char* record) noexcept nogil
    void* _ing_memcpy "memcpy" (void* dst, const void* src, size_t n) noexcept nogil
    void* _ing_memmove "memmove" (void* dst, const void* src, size_t n) noexcept nogil
    void* _ing_realloc "realloc" (void* p, size_t n) noexcept nogil
    void _ing_free "free" (void* p) noexcept nogil

