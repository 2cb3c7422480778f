# Recipient file parsing, normalisation, dedupe and ctn hashing. Included by _fastpath.pyx.
#
# The rules are specified (and explained) in dispatch/_reference/ingest.py; this file gives the
# same batches, counters and errors, faster. Layout of the work for one fed chunk:
#   1. _consume (GIL released) splits lines/CSV records, normalises phone fields and appends
#      candidates (packed number, line) to C arrays; line errors go to a C array too.
#   2. _finish_run dedupes the candidates in file order against an open-addressing set of 64-bit
#      packed numbers (prefetching slots ahead, since a big set misses the cache), then
#      SipHash-128s the survivors into one bytes buffer (GIL released for both).
#   3. Only CSV builds Python objects per recipient (its variables), with the GIL.
# The first well-formed CSV record stops step 1 once so its header can be read with the GIL.

cimport cython
from libc.stdint cimport uint64_t as _ing_u64
from cpython.bytes cimport PyBytes_FromStringAndSize as _ing_bytes
from cpython.unicode cimport PyUnicode_DecodeUTF8 as _ing_decode
from cpython cimport array as _ing_carray
import array as _ing_array_module

from dispatch._reference.ingest import (
    DEFAULT_PHONE_COLUMNS,
    REASONS,
    Recipient,
    RecipientBatch,
)

cdef extern from *:
    """
    #include <stddef.h>
    #include <stdint.h>
    #include <stdlib.h>
    #include <string.h>
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif

    /* ---- SipHash-2-4, 128-bit output (Aumasson & Bernstein, reference siphash.c) ---- */
    #define DPI_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
    #define DPI_SIPROUND do { \
        v0 += v1; v1 = DPI_ROTL(v1, 13); v1 ^= v0; v0 = DPI_ROTL(v0, 32); \
        v2 += v3; v3 = DPI_ROTL(v3, 16); v3 ^= v2; \
        v0 += v3; v3 = DPI_ROTL(v3, 21); v3 ^= v0; \
        v2 += v1; v1 = DPI_ROTL(v1, 17); v1 ^= v2; v2 = DPI_ROTL(v2, 32); } while (0)

    static inline uint64_t dpi_load_le64(const unsigned char *p) {
        return (uint64_t)p[0] | ((uint64_t)p[1] << 8) | ((uint64_t)p[2] << 16) |
               ((uint64_t)p[3] << 24) | ((uint64_t)p[4] << 32) | ((uint64_t)p[5] << 40) |
               ((uint64_t)p[6] << 48) | ((uint64_t)p[7] << 56);
    }
    static inline void dpi_store_le64(unsigned char *p, uint64_t v) {
        int i;
        for (i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
    }
    static void dpi_siphash128(uint64_t k0, uint64_t k1, const unsigned char *in, size_t n,
                               unsigned char *out) {
        uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1 ^ 0xee;
        uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
        size_t full = n - (n % 8), i;
        uint64_t m, b = ((uint64_t)n) << 56;
        for (i = 0; i < full; i += 8) {
            m = dpi_load_le64(in + i);
            v3 ^= m; DPI_SIPROUND; DPI_SIPROUND; v0 ^= m;
        }
        for (i = 0; i < (n & 7); i++) b |= (uint64_t)in[full + i] << (8 * i);
        v3 ^= b; DPI_SIPROUND; DPI_SIPROUND; v0 ^= b;
        v2 ^= 0xee;
        DPI_SIPROUND; DPI_SIPROUND; DPI_SIPROUND; DPI_SIPROUND;
        dpi_store_le64(out, v0 ^ v1 ^ v2 ^ v3);
        v1 ^= 0xdd;
        DPI_SIPROUND; DPI_SIPROUND; DPI_SIPROUND; DPI_SIPROUND;
        dpi_store_le64(out + 8, v0 ^ v1 ^ v2 ^ v3);
    }

    /* Two SipHash-128 at once for messages of 8..15 bytes (every valid number): one state
       alone is latency-bound, two independent ones fill the idle ALU slots. */
    #define DPI_SR(a, b, c, d) do { \
        a += b; b = DPI_ROTL(b, 13); b ^= a; a = DPI_ROTL(a, 32); \
        c += d; d = DPI_ROTL(d, 16); d ^= c; \
        a += d; d = DPI_ROTL(d, 21); d ^= a; \
        c += b; b = DPI_ROTL(b, 17); b ^= c; c = DPI_ROTL(c, 32); } while (0)
    #define DPI_SR2 do { DPI_SR(v0, v1, v2, v3); DPI_SR(w0, w1, w2, w3); } while (0)
    static inline uint64_t dpi_tail_word(const unsigned char *in, size_t n) {
        uint64_t b = ((uint64_t)n) << 56;
        size_t i;
        for (i = 8; i < n; i++) b |= (uint64_t)in[i] << (8 * (i - 8));
        return b;
    }
    static void dpi_siphash128_short2(uint64_t k0, uint64_t k1,
                                      const unsigned char *a, size_t na, unsigned char *out_a,
                                      const unsigned char *b, size_t nb, unsigned char *out_b) {
        uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1 ^ 0xee;
        uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
        uint64_t w0 = v0, w1 = v1, w2 = v2, w3 = v3;
        uint64_t ma = dpi_load_le64(a), mb = dpi_load_le64(b);
        uint64_t ta = dpi_tail_word(a, na), tb = dpi_tail_word(b, nb);
        v3 ^= ma; w3 ^= mb; DPI_SR2; DPI_SR2; v0 ^= ma; w0 ^= mb;
        v3 ^= ta; w3 ^= tb; DPI_SR2; DPI_SR2; v0 ^= ta; w0 ^= tb;
        v2 ^= 0xee; w2 ^= 0xee;
        DPI_SR2; DPI_SR2; DPI_SR2; DPI_SR2;
        dpi_store_le64(out_a, v0 ^ v1 ^ v2 ^ v3);
        dpi_store_le64(out_b, w0 ^ w1 ^ w2 ^ w3);
        v1 ^= 0xdd; w1 ^= 0xdd;
        DPI_SR2; DPI_SR2; DPI_SR2; DPI_SR2;
        dpi_store_le64(out_a + 8, v0 ^ v1 ^ v2 ^ v3);
        dpi_store_le64(out_b + 8, w0 ^ w1 ^ w2 ^ w3);
    }
    /* ctn_hashes of count digit records (16 bytes: the digits, their count in byte 15),
       16 bytes each into out, two at a time. */
    static void dpi_hash_many(uint64_t k0, uint64_t k1, const unsigned char *records,
                              size_t count, unsigned char *out) {
        size_t i = 0;
        for (; i + 1 < count; i += 2) {
            const unsigned char *a = records + 16 * i, *b = a + 16;
            if (a[15] >= 8 && b[15] >= 8)
                dpi_siphash128_short2(k0, k1, a, a[15], out + 16 * i, b, b[15], out + 16 * i + 16);
            else {
                dpi_siphash128(k0, k1, a, a[15], out + 16 * i);
                dpi_siphash128(k0, k1, b, b[15], out + 16 * i + 16);
            }
        }
        for (; i < count; i++)
            dpi_siphash128(k0, k1, records + 16 * i, records[16 * i + 15], out + 16 * i);
    }

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
    static inline ptrdiff_t dpi_count_byte(const unsigned char *b, ptrdiff_t pos, ptrdiff_t end,
                                           unsigned char c) {
        ptrdiff_t n = 0;
        for (; pos < end; pos++) n += b[pos] == c;
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
    /* The prefix rules and length checks on the collected digits (n may exceed 24: only the
       first 24 were stored). Shared by the field normaliser and the fused txt line scan. */
    static inline int dpi_finish_digits(const unsigned char *d, int n, int plus,
                                        const dpi_trunk *trunk, uint64_t *out,
                                        unsigned char *record) {
        unsigned char t[28];
        const unsigned char *digits = d;
        int len, i;
        uint64_t v = 0;
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
        for (i = 0; i < len; i++) v = v * 10 + (uint64_t)(digits[i] - '0');
        *out = v;
        if (record) { memcpy(record, digits, (size_t)len); record[15] = (unsigned char)len; }
        return 0;
    }
    static int dpi_normalize(const unsigned char *b, ptrdiff_t pos, ptrdiff_t end,
                             const dpi_trunk *trunk, uint64_t *out, unsigned char *record) {
        unsigned char d[24];
        int n = 0, plus;
        while (pos < end && (b[pos] == 32 || b[pos] == 9)) pos++;
        while (end > pos && (b[end - 1] == 32 || b[end - 1] == 9)) end--;
        if (pos == end) return 5;                      /* empty_phone */
        plus = b[pos] == '+';
        if (plus) pos++;
        for (; pos < end; pos++) {
            unsigned char c = b[pos];
            if ((unsigned)(c - '0') < 10) { if (n < 24) d[n] = c; n++; }
            else if (!(c == ' ' || c == '-' || c == '.' || c == '(' || c == ')')) return 1;
        }
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
        int n = 0, plus = 0, started = 0, invalid = 0, tab_after = 0;
        for (; pos < lim; pos++) {
            unsigned char c = b[pos];
            if ((unsigned)(c - '0') < 10) {
                if (tab_after) invalid = 1;
                if (n < 24) d[n] = c;
                n++;
                started = 1;
            } else if (c == 10 || c == 13) {
                *eol = pos;
                if (!started) return DPI_BLANK;
                if (invalid) return 1;
                return dpi_finish_digits(d, n, plus, trunk, out, record);
            } else if (c == ' ') {
                continue;
            } else if (c == 9) {
                if (started) tab_after = 1;
            } else if (c == '-' || c == '.' || c == '(' || c == ')') {
                if (tab_after) invalid = 1;
                started = 1;
            } else if (c == '+' && !started) {
                plus = 1;
                started = 1;
            } else {
                invalid = 1;
                started = 1;
            }
        }
        *eol = -1;
        return 0;
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
    void dpi_siphash128(_ing_u64 k0, _ing_u64 k1, const unsigned char* data, size_t n,
                        unsigned char* out) noexcept nogil
    void dpi_hash_many(_ing_u64 k0, _ing_u64 k1, const unsigned char* records, size_t count,
                       unsigned char* out) noexcept nogil
    int dpi_vec_reserve(dpi_vec* a, size_t need) noexcept nogil
    int dpi_vec_push(dpi_vec* a, _ing_u64 x) noexcept nogil
    void dpi_vec_free(dpi_vec* a) noexcept nogil
    void dpi_set_prefetch(const dpi_set* s, _ing_u64 key) noexcept nogil
    int dpi_set_add(dpi_set* s, _ing_u64 key) noexcept nogil
    void dpi_set_free(dpi_set* s) noexcept nogil
    Py_ssize_t dpi_find_eol(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end) noexcept nogil
    int dpi_is_blank(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end) noexcept nogil
    Py_ssize_t dpi_count_eols(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end) noexcept nogil
    Py_ssize_t dpi_count_byte(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end,
                              unsigned char c) noexcept nogil
    Py_ssize_t dpi_find_byte(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end,
                             unsigned char c) noexcept nogil
    Py_ssize_t dpi_digit_count(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end) noexcept nogil
    int dpi_bad_encoding(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end) noexcept nogil
    int dpi_txt_line(const unsigned char* b, Py_ssize_t pos, Py_ssize_t lim, const dpi_trunk* trunk,
                     _ing_u64* out, unsigned char* record, Py_ssize_t* eol) noexcept nogil
    int DPI_BLANK
    int dpi_normalize(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end,
                      const dpi_trunk* trunk, _ing_u64* out, unsigned char* record) noexcept nogil
    void* _ing_memcpy "memcpy" (void* dst, const void* src, size_t n) noexcept nogil
    void* _ing_memmove "memmove" (void* dst, const void* src, size_t n) noexcept nogil
    void* _ing_realloc "realloc" (void* p, size_t n) noexcept nogil
    void _ing_free "free" (void* p) noexcept nogil


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
