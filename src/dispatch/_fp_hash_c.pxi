# ctn hashing in C: SipHash-2-4 with 128-bit output (scalar, two at a time, and eight at a time
# in AVX2 lanes when the CPU has them). Included by _fastpath.pxd before _fp_ingest_c.pxi (which
# uses its load/store helpers); see that file for how the C layer is shared.

from libc.stdint cimport uint64_t as _ing_u64

cdef extern from *:
    """
    #include <stddef.h>
    #include <stdint.h>
    #include <stdlib.h>
    #include <string.h>
    #if defined(__GNUC__) && defined(__x86_64__)
    #include <immintrin.h>
    #define DPI_X86_AVX2 1
    #endif
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    #define DPI_LITTLE_ENDIAN 1
    #endif
    static inline uint64_t dpi_loadu64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
    static inline void dpi_storeu64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

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
        /* n is 8..15 and in[8..15] is readable (a 16-byte record) */
    #if defined(DPI_LITTLE_ENDIAN)
        return (dpi_loadu64(in + 8) & ((1ULL << (8 * (n - 8))) - 1)) | ((uint64_t)n << 56);
    #else
        uint64_t b = ((uint64_t)n) << 56;
        size_t i;
        for (i = 8; i < n; i++) b |= (uint64_t)in[i] << (8 * (i - 8));
        return b;
    #endif
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
    /* SipHash-2-4-128 of digit records (every length 8..15), 8 at a time in AVX2 lanes: the same
       function, four 64-bit lanes per register and two registers in flight (3-4x the scalar pair
       on this machine). Compiled for AVX2 whatever the build flags; used only when the CPU has it. */
    #if defined(DPI_X86_AVX2)
    #define DPI_V_ROTL(x, b) _mm256_or_si256(_mm256_slli_epi64((x), (b)), _mm256_srli_epi64((x), 64 - (b)))
    #define DPI_V_ROTL32(x) _mm256_shuffle_epi32((x), 0xB1)
    #define DPI_V_ROUND(a, b, c, d) do { \
        a = _mm256_add_epi64(a, b); b = DPI_V_ROTL(b, 13); b = _mm256_xor_si256(b, a); a = DPI_V_ROTL32(a); \
        c = _mm256_add_epi64(c, d); d = DPI_V_ROTL(d, 16); d = _mm256_xor_si256(d, c); \
        a = _mm256_add_epi64(a, d); d = DPI_V_ROTL(d, 21); d = _mm256_xor_si256(d, a); \
        c = _mm256_add_epi64(c, b); b = DPI_V_ROTL(b, 17); b = _mm256_xor_si256(b, c); c = DPI_V_ROTL32(c); \
        } while (0)
    #define DPI_V_ROUND2 do { DPI_V_ROUND(v0, v1, v2, v3); DPI_V_ROUND(w0, w1, w2, w3); } while (0)
    /* Message words of four records at r: first 8 digits, and the last word (the remaining digits
       and the length in the top byte), lanes in the order r0, r2, r1, r3. */
    __attribute__((target("avx2")))
    static inline void dpi_v_words(const unsigned char *r, __m256i *m, __m256i *t) {
        const __m256i x = _mm256_loadu_si256((const __m256i *)r);
        const __m256i y = _mm256_loadu_si256((const __m256i *)(r + 32));
        const __m256i hi = _mm256_unpackhi_epi64(x, y);
        const __m256i len = _mm256_srli_epi64(hi, 56);
        const __m256i keep = _mm256_sub_epi64(
            _mm256_sllv_epi64(_mm256_set1_epi64x(1), _mm256_sub_epi64(_mm256_slli_epi64(len, 3),
                                                                        _mm256_set1_epi64x(64))),
            _mm256_set1_epi64x(1));
        *m = _mm256_unpacklo_epi64(x, y);
        *t = _mm256_or_si256(_mm256_and_si256(hi, keep), _mm256_slli_epi64(len, 56));
    }
    __attribute__((target("avx2")))
    static void dpi_hash_records8_avx2(uint64_t k0, uint64_t k1, const unsigned char *records,
                                       size_t groups, unsigned char *out) {
        const __m256i i0 = _mm256_set1_epi64x((long long)(0x736f6d6570736575ULL ^ k0));
        const __m256i i1 = _mm256_set1_epi64x((long long)(0x646f72616e646f6dULL ^ k1 ^ 0xee));
        const __m256i i2 = _mm256_set1_epi64x((long long)(0x6c7967656e657261ULL ^ k0));
        const __m256i i3 = _mm256_set1_epi64x((long long)(0x7465646279746573ULL ^ k1));
        const __m256i ee = _mm256_set1_epi64x(0xee), dd = _mm256_set1_epi64x(0xdd);
        size_t g;
        for (g = 0; g < groups; g++, records += 128, out += 128) {
            __m256i v0 = i0, v1 = i1, v2 = i2, v3 = i3, w0 = i0, w1 = i1, w2 = i2, w3 = i3;
            __m256i ma, ta, mb, tb, a0, b0;
            dpi_v_words(records, &ma, &ta);
            dpi_v_words(records + 64, &mb, &tb);
            v3 = _mm256_xor_si256(v3, ma); w3 = _mm256_xor_si256(w3, mb);
            DPI_V_ROUND2; DPI_V_ROUND2;
            v0 = _mm256_xor_si256(v0, ma); w0 = _mm256_xor_si256(w0, mb);
            v3 = _mm256_xor_si256(v3, ta); w3 = _mm256_xor_si256(w3, tb);
            DPI_V_ROUND2; DPI_V_ROUND2;
            v0 = _mm256_xor_si256(v0, ta); w0 = _mm256_xor_si256(w0, tb);
            v2 = _mm256_xor_si256(v2, ee); w2 = _mm256_xor_si256(w2, ee);
            DPI_V_ROUND2; DPI_V_ROUND2; DPI_V_ROUND2; DPI_V_ROUND2;
            a0 = _mm256_xor_si256(_mm256_xor_si256(v0, v1), _mm256_xor_si256(v2, v3));
            b0 = _mm256_xor_si256(_mm256_xor_si256(w0, w1), _mm256_xor_si256(w2, w3));
            v1 = _mm256_xor_si256(v1, dd); w1 = _mm256_xor_si256(w1, dd);
            DPI_V_ROUND2; DPI_V_ROUND2; DPI_V_ROUND2; DPI_V_ROUND2;
            v0 = _mm256_xor_si256(_mm256_xor_si256(v0, v1), _mm256_xor_si256(v2, v3));
            w0 = _mm256_xor_si256(_mm256_xor_si256(w0, w1), _mm256_xor_si256(w2, w3));
            /* lanes r0, r2, r1, r3: unpacking the two halves puts r0 r1 | r2 r3 back in order */
            _mm256_storeu_si256((__m256i *)out, _mm256_unpacklo_epi64(a0, v0));
            _mm256_storeu_si256((__m256i *)(out + 32), _mm256_unpackhi_epi64(a0, v0));
            _mm256_storeu_si256((__m256i *)(out + 64), _mm256_unpacklo_epi64(b0, w0));
            _mm256_storeu_si256((__m256i *)(out + 96), _mm256_unpackhi_epi64(b0, w0));
        }
    }
    static int dpi_avx2_usable(void) {
        static int known = -1;
        if (known < 0) { __builtin_cpu_init(); known = __builtin_cpu_supports("avx2") ? 1 : 0; }
        return known;
    }
    #endif

    /* ctn_hashes of count digit records (16 bytes: the digits, their count in byte 15; every
       valid number has 10..15 digits), 16 bytes each into out: AVX2 eight at a time when the CPU
       has it, then two at a time, then one. */
    static void dpi_hash_many(uint64_t k0, uint64_t k1, const unsigned char *records,
                              size_t count, unsigned char *out) {
        size_t i = 0;
    #if defined(DPI_X86_AVX2) && defined(DPI_LITTLE_ENDIAN)
        if (count >= 8 && dpi_avx2_usable()) {
            dpi_hash_records8_avx2(k0, k1, records, count / 8, out);
            i = count - count % 8;
        }
    #endif
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

    """
    void dpi_siphash128(_ing_u64 k0, _ing_u64 k1, const unsigned char* data, size_t n,
                        unsigned char* out) noexcept nogil
    void dpi_hash_many(_ing_u64 k0, _ing_u64 k1, const unsigned char* records, size_t count,
                       unsigned char* out) noexcept nogil
