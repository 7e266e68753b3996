/* Direct convolution with SIMD registers: the inner loops of the "simd" strategy.
 *
 * Why not a GEMM? im2col + GEMM copies every receptive field (9x the input for a 3x3
 * layer) and hands OpenBLAS matrices with one small side (16-64 channels), which it runs
 * at a fraction of the machine's peak. Here the output stays in registers while the input
 * and the weights stream past it: the trick of oneDNN's direct kernels, written our way.
 *
 * Layout: channels last, one sample at a time (the Python/Cython driver converts):
 *   xp (Hp, Wp, Cp)   the input, zero-padded (and padded to Cp channels, a multiple of CB,
 *                     and wide enough that a full block of PB output pixels never reads past
 *                     a row: the driver sizes it), so the loops below need no bounds tests;
 *   w  (KH, KW, Cp, K) the filters (zero for the padded channels), K % VEC == 0;
 *   y  (OH, OWp, K)   the output, OWp = OW rounded up to PB (the extra columns are dropped).
 *
 *   forward:  y[oh, ow, k]  = sum_{kh, kw, c} xp[oh*sh + kh*dh, ow*sw + kw*dw, c] * w[kh, kw, c, k]
 *   weight:   gw[kh, kw, c, k] += sum_{oh, ow} xp[oh*sh + kh*dh, ow*sw + kw*dw, c] * gy[oh, ow, k]
 *
 * Register blocking (the whole idea): the forward kernel keeps a block of PB output pixels
 * x KB vectors of VEC output channels in PB*KB vector registers. For each (tap, input
 * channel) it loads KB weight vectors once and broadcasts PB input values, so it does
 * PB*KB fused multiply-adds per PB + KB loads: with PB = 8, KB = 2 that is 16 FMAs per
 * 10 loads, close to the two FMAs a cycle the machine can issue. The weight gradient keeps
 * CB input channels x KB vectors of output channels of one tap in registers and streams
 * the pixels past them.
 *
 * Vectors: AVX-512 (VEC = 16 floats) or AVX2 + FMA (VEC = 8) when the compiler targets
 * them (setup.py builds with -march=native where the compiler allows), else plain C loops
 * over 8-float structs that the compiler may vectorise itself: the same arithmetic, slower.
 * float32 only; float64 convolutions use the other strategies.
 */
#ifndef TINYGRAD_CNN_DIRECT_CONV_H
#define TINYGRAD_CNN_DIRECT_CONV_H

#include <stddef.h>
#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define TG_VEC 16
#define TG_ISA "avx512"
typedef __m512 tg_vec;
static inline tg_vec tg_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void tg_store(float *p, tg_vec v) { _mm512_storeu_ps(p, v); }
static inline tg_vec tg_set1(float s) { return _mm512_set1_ps(s); }
static inline tg_vec tg_zero(void) { return _mm512_setzero_ps(); }
static inline tg_vec tg_fma(tg_vec a, tg_vec b, tg_vec c) { return _mm512_fmadd_ps(a, b, c); }
static inline tg_vec tg_add(tg_vec a, tg_vec b) { return _mm512_add_ps(a, b); }
/* the first n < TG_VEC lanes only (the rest read as 0, or left unwritten) */
static inline tg_vec tg_load_n(const float *p, int n) { return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p); }
static inline void tg_store_n(float *p, tg_vec v, int n) { _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), v); }
static inline float tg_sum(tg_vec v) { return _mm512_reduce_add_ps(v); }
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define TG_VEC 8
#define TG_ISA "avx2"
typedef __m256 tg_vec;
static inline tg_vec tg_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void tg_store(float *p, tg_vec v) { _mm256_storeu_ps(p, v); }
static inline tg_vec tg_set1(float s) { return _mm256_set1_ps(s); }
static inline tg_vec tg_zero(void) { return _mm256_setzero_ps(); }
static inline tg_vec tg_fma(tg_vec a, tg_vec b, tg_vec c) { return _mm256_fmadd_ps(a, b, c); }
static inline tg_vec tg_add(tg_vec a, tg_vec b) { return _mm256_add_ps(a, b); }
static inline __m256i tg_mask8(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
static inline tg_vec tg_load_n(const float *p, int n) { return _mm256_maskload_ps(p, tg_mask8(n)); }
static inline void tg_store_n(float *p, tg_vec v, int n) { _mm256_maskstore_ps(p, tg_mask8(n), v); }
static inline float tg_sum(tg_vec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}
#else
#define TG_VEC 8
#define TG_ISA "portable"
typedef struct { float v[8]; } tg_vec;
static inline tg_vec tg_load(const float *p) { tg_vec r; memcpy(r.v, p, sizeof r.v); return r; }
static inline void tg_store(float *p, tg_vec v) { memcpy(p, v.v, sizeof v.v); }
static inline tg_vec tg_set1(float s) { tg_vec r; for (int i = 0; i < 8; i++) r.v[i] = s; return r; }
static inline tg_vec tg_zero(void) { return tg_set1(0.0f); }
static inline tg_vec tg_fma(tg_vec a, tg_vec b, tg_vec c) {
    for (int i = 0; i < 8; i++) c.v[i] += a.v[i] * b.v[i];
    return c;
}
static inline tg_vec tg_add(tg_vec a, tg_vec b) {
    for (int i = 0; i < 8; i++) a.v[i] += b.v[i];
    return a;
}
static inline tg_vec tg_load_n(const float *p, int n) { tg_vec r = tg_zero(); memcpy(r.v, p, n * sizeof(float)); return r; }
static inline void tg_store_n(float *p, tg_vec v, int n) { memcpy(p, v.v, n * sizeof(float)); }
static inline float tg_sum(tg_vec v) { float s = 0; for (int i = 0; i < 8; i++) s += v.v[i]; return s; }
#endif

/* Channels padded to a multiple of TG_CB for the weight-gradient blocks. */
#define TG_CB 4

/* --------------------------------------------------------------------------- forward */
/* One block: PB output pixels (ow0 .. ow0 + PB - 1 of row oh) x KB vectors of output
 * channels (k0 .. k0 + KB*VEC - 1). */
#define TG_FORWARD_BLOCK(PB, KB)                                                                   \
    static inline void tg_forward_block_##PB##x##KB(                                              \
        const float *xp, int Wp, int C, int Cp, const float *w, int KH, int KW, int K, float *y,   \
        int OWp, int oh, int ow0, int k0, int sh, int sw, int dh, int dw) {                        \
        tg_vec acc[PB][KB];                                                                        \
        for (int p = 0; p < PB; p++)                                                               \
            for (int b = 0; b < KB; b++) acc[p][b] = tg_zero();                                    \
        for (int kh = 0; kh < KH; kh++)                                                            \
            for (int kw = 0; kw < KW; kw++) {                                                      \
                const float *xr = xp + ((size_t)(oh * sh + kh * dh) * Wp + ow0 * sw + kw * dw) * Cp;\
                const float *wr = w + (size_t)(kh * KW + kw) * Cp * K + k0;                        \
                for (int c = 0; c < C; c++) { /* not Cp: the padded channels add zeros */          \
                    tg_vec wv[KB];                                                                 \
                    for (int b = 0; b < KB; b++) wv[b] = tg_load(wr + (size_t)c * K + b * TG_VEC);  \
                    for (int p = 0; p < PB; p++) {                                                 \
                        tg_vec xv = tg_set1(xr[(size_t)p * sw * Cp + c]);                          \
                        for (int b = 0; b < KB; b++) acc[p][b] = tg_fma(xv, wv[b], acc[p][b]);     \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        float *yr = y + ((size_t)oh * OWp + ow0) * K + k0;                                         \
        for (int p = 0; p < PB; p++)                                                               \
            for (int b = 0; b < KB; b++) tg_store(yr + (size_t)p * K + b * TG_VEC, acc[p][b]);     \
    }

TG_FORWARD_BLOCK(8, 1)
TG_FORWARD_BLOCK(10, 1)
TG_FORWARD_BLOCK(12, 1)
TG_FORWARD_BLOCK(14, 1)
TG_FORWARD_BLOCK(16, 1)
TG_FORWARD_BLOCK(8, 2)
TG_FORWARD_BLOCK(4, 4)

/* Row blocks of one vector of channels hold at most this many pixels (their accumulators,
 * one weight vector and one broadcast in the 32 AVX-512 registers, or the 16 of AVX2). */
#define TG_ROW_BLOCK_MAX (TG_VEC == 16 ? 16 : 12)

/* The output pixels a forward block covers (OWp, OW rounded up to a multiple of it). With
 * one vector of output channels (K = 16 with AVX-512: LeNet-5's 6 -> 16 layer) the block
 * is 8-16 pixels long, the length that pads a row of OW pixels least (10 for LeNet's
 * 10-pixel rows, which blocks of 8 padded to 16: 37% of the work was padding). */
static inline int tg_forward_pixels(int K, int OW) {
    if (K % (4 * TG_VEC) == 0) return 4;
    if (K % (2 * TG_VEC) == 0) return 8;
    int best = 8;
    for (int pb = 10; pb <= TG_ROW_BLOCK_MAX; pb += 2)
        if ((OW + pb - 1) / pb * pb <= (OW + best - 1) / best * best) best = pb;  /* ties: longer */
    return best;
}

#define TG_ROWS_OF_BLOCKS(PB, KB)                                                                  \
    for (int k0 = 0; k0 < K; k0 += KB * TG_VEC)  /* one weight block stays in cache */            \
        for (int oh = 0; oh < OH; oh++)                                                            \
            for (int ow0 = 0; ow0 < OWp; ow0 += PB)                                                \
                tg_forward_block_##PB##x##KB(xp, Wp, C, Cp, w, KH, KW, K, y, OWp, oh, ow0, k0, sh, sw, dh, dw)

/* y (OH, OWp, K) for the padded sample xp; PB = tg_forward_pixels(K, OW), OWp a multiple of it. */
static inline void tg_direct_forward(const float *xp, int Wp, int C, int Cp, const float *w, int KH, int KW,
                                     int K, float *y, int OH, int OWp, int PB, int sh, int sw, int dh, int dw) {
    if (K % (4 * TG_VEC) == 0) {
        TG_ROWS_OF_BLOCKS(4, 4);
    } else if (K % (2 * TG_VEC) == 0) {
        TG_ROWS_OF_BLOCKS(8, 2);
    } else {
        switch (PB) {
        case 10: TG_ROWS_OF_BLOCKS(10, 1); break;
        case 12: TG_ROWS_OF_BLOCKS(12, 1); break;
        case 14: TG_ROWS_OF_BLOCKS(14, 1); break;
        case 16: TG_ROWS_OF_BLOCKS(16, 1); break;
        default: TG_ROWS_OF_BLOCKS(8, 1); break;
        }
    }
}

/* ---------------------------------------------------------------------- weight gradient */
/* One block: TG_CB input channels (c0 ..) x KB vectors of output channels (k0 ..) of tap
 * (kh, kw), summed over every output pixel: gw[kh, kw, c, k] += sum_pix x * gy. */
#define TG_WEIGHT_BLOCK(KB)                                                                        \
    static inline void tg_weight_block_##KB(                                                      \
        const float *xp, int Wp, int Cp, const float *gy, int OH, int OW, int K, float *gw, int KW, \
        int kh, int kw, int c0, int k0, int sh, int sw, int dh, int dw) {                          \
        tg_vec acc[TG_CB][KB];                                                                     \
        for (int j = 0; j < TG_CB; j++)                                                            \
            for (int b = 0; b < KB; b++) acc[j][b] = tg_zero();                                    \
        for (int oh = 0; oh < OH; oh++) {                                                          \
            const float *xr = xp + ((size_t)(oh * sh + kh * dh) * Wp + kw * dw) * Cp + c0;          \
            const float *gr = gy + (size_t)oh * OW * K + k0;                                       \
            for (int ow = 0; ow < OW; ow++) {                                                      \
                tg_vec gv[KB];                                                                     \
                for (int b = 0; b < KB; b++) gv[b] = tg_load(gr + (size_t)ow * K + b * TG_VEC);     \
                const float *xv = xr + (size_t)ow * sw * Cp;                                       \
                for (int j = 0; j < TG_CB; j++) {                                                  \
                    tg_vec s = tg_set1(xv[j]);                                                     \
                    for (int b = 0; b < KB; b++) acc[j][b] = tg_fma(s, gv[b], acc[j][b]);          \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        float *out = gw + ((size_t)(kh * KW + kw) * Cp + c0) * K + k0;                             \
        for (int j = 0; j < TG_CB; j++)                                                            \
            for (int b = 0; b < KB; b++) {                                                         \
                float *o = out + (size_t)j * K + b * TG_VEC;                                       \
                tg_store(o, tg_add(tg_load(o), acc[j][b]));                                        \
            }                                                                                      \
    }

TG_WEIGHT_BLOCK(1)
TG_WEIGHT_BLOCK(2)
TG_WEIGHT_BLOCK(4)

static inline void tg_direct_weight_grad(const float *xp, int Wp, int Cp, const float *gy, int OH, int OW,
                                         int K, float *gw, int KH, int KW, int sh, int sw, int dh, int dw) {
    int KB = (K % (4 * TG_VEC) == 0) ? 4 : (K % (2 * TG_VEC) == 0) ? 2 : 1;
    for (int kh = 0; kh < KH; kh++)
        for (int kw = 0; kw < KW; kw++)
            for (int c0 = 0; c0 < Cp; c0 += TG_CB)
                for (int k0 = 0; k0 < K; k0 += KB * TG_VEC) {
                    if (KB == 4)
                        tg_weight_block_4(xp, Wp, Cp, gy, OH, OW, K, gw, KW, kh, kw, c0, k0, sh, sw, dh, dw);
                    else if (KB == 2)
                        tg_weight_block_2(xp, Wp, Cp, gy, OH, OW, K, gw, KW, kh, kw, c0, k0, sh, sw, dh, dw);
                    else
                        tg_weight_block_1(xp, Wp, Cp, gy, OH, OW, K, gw, KW, kh, kw, c0, k0, sh, sw, dh, dw);
                }
}

/* ------------------------------------------------- pixel vectors (NCHW, stride 1) */
/* The other register layout, for stride-1 layers whose output rows are at least a vector
 * long: a vector holds TG_VEC neighbouring output pixels of one channel, straight in NCHW,
 * so neither the input nor the output needs a transpose (only a zero-padded copy of x):
 *
 *   xq (C, Hq, Wq)   the input zero-padded (and wide enough that a vector read from any
 *                    output position stays inside its row's buffer, and reads zeros there);
 *   w  (K, C, KH, KW) PyTorch's layout;   y (K, OH, OW) one sample's output.
 *
 * A block keeps KB output channels x PV vectors of one output row in registers: per (c, kh,
 * kw) it loads PV input vectors and broadcasts KB weights, for KB*PV FMAs. */
#define TG_PIXEL_BLOCK(KB, PV)                                                                     \
    static inline void tg_pixel_block_##KB##x##PV(                                                \
        const float *xq, int C, int Hq, int Wq, const float *w, int KH, int KW, int dh, int dw,     \
        float *y, int OH, int OW, int k0, int oh, int ow0) {                                       \
        tg_vec acc[KB][PV];                                                                        \
        for (int b = 0; b < KB; b++)                                                               \
            for (int q = 0; q < PV; q++) acc[b][q] = tg_zero();                                    \
        for (int c = 0; c < C; c++)                                                                \
            for (int kh = 0; kh < KH; kh++) {                                                      \
                const float *xr = xq + ((size_t)c * Hq + oh + kh * dh) * Wq + ow0;                 \
                const float *wr = w + (((size_t)k0 * C + c) * KH + kh) * KW;                       \
                for (int kw = 0; kw < KW; kw++) {                                                  \
                    tg_vec xv[PV];                                                                 \
                    for (int q = 0; q < PV; q++) xv[q] = tg_load(xr + kw * dw + q * TG_VEC);        \
                    for (int b = 0; b < KB; b++) {                                                 \
                        tg_vec wv = tg_set1(wr[(size_t)b * C * KH * KW + kw]);                     \
                        for (int q = 0; q < PV; q++) acc[b][q] = tg_fma(wv, xv[q], acc[b][q]);     \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        for (int b = 0; b < KB; b++)                                                               \
            for (int q = 0; q < PV; q++) {                                                         \
                int ow = ow0 + q * TG_VEC, left = OW - ow;                                         \
                float *dst = y + ((size_t)(k0 + b) * OH + oh) * OW + ow;                           \
                if (left >= TG_VEC) tg_store(dst, acc[b][q]);                                      \
                else if (left > 0) tg_store_n(dst, acc[b][q], left);                               \
            }                                                                                      \
    }

TG_PIXEL_BLOCK(16, 1)
TG_PIXEL_BLOCK(8, 2)
TG_PIXEL_BLOCK(8, 1)
TG_PIXEL_BLOCK(4, 2)
TG_PIXEL_BLOCK(4, 1)
TG_PIXEL_BLOCK(1, 2)
TG_PIXEL_BLOCK(1, 1)

/* Output channels per block: 16 with one vector per row, 8 (or 4, or 1) with two. */
static inline int tg_pixel_channels(int K, int PV) {
    if (PV == 1 && K % 16 == 0) return 16;
    return K % 8 == 0 ? 8 : K % 4 == 0 ? 4 : 1;
}

#define TG_PIXEL_CALL(KB, PV) \
    tg_pixel_block_##KB##x##PV(xq, C, Hq, Wq, w, KH, KW, dh, dw, y, OH, OW, k0, oh, ow0)

/* The common 3x3 kernel (AVX-512 only: its 16 accumulators, 2 input vectors and a broadcast
 * need 19 of the 32 vector registers; AVX2 has 16) with all 9 taps unrolled: 8 output
 * channels x 2 output vectors, 16 named accumulators (see the weight gradient's block below
 * for why named). The two vectors are any two of the sample's output vectors, at element
 * offsets xo0 and xo1 of xq's (Hq, Wq) plane and yo0 and yo1 of the row-major (OH, OW)
 * plane (n0 and n1 of their lanes stored; n1 = 0: none): the next
 * vector of the row, or the next row's when a row is one vector long. Per tap 2 input loads
 * and 8 weight broadcasts feed 16 FMAs; per input channel 144 FMAs run without a loop test.
 * One thread, 16 samples, float32: 16 channels 32x32 83 -> 106-110 GFLOP/s, 32 channels
 * 16x16 70-78 -> 96-103 against the general blocks (PyTorch's oneDNN on one thread: 74-76);
 * the sums run in the same order, so the results are bit-identical to theirs. */
#define TG_TAP3_8x2(i)                                                                              \
    s = tg_set1(wt[(i) * ws]); a##i = tg_fma(s, u, a##i); b##i = tg_fma(s, v, b##i);

static inline void tg_pixel3_block_8x2(const float *xq, int C, int Hq, int Wq, const float *w, int dh, int dw,
                                       float *y, int OH, int OW, int k0, size_t xo0, size_t xo1, size_t yo0,
                                       size_t yo1, int n0, int n1) {
    tg_vec a0 = tg_zero(), a1 = tg_zero(), a2 = tg_zero(), a3 = tg_zero(), a4 = tg_zero(), a5 = tg_zero(),
           a6 = tg_zero(), a7 = tg_zero(), b0 = tg_zero(), b1 = tg_zero(), b2 = tg_zero(), b3 = tg_zero(),
           b4 = tg_zero(), b5 = tg_zero(), b6 = tg_zero(), b7 = tg_zero(), s;
    const size_t ws = (size_t)C * 9, plane = (size_t)Hq * Wq;  /* ws: from one filter to the next */
    const float *wc = w + (size_t)k0 * ws, *x0 = xq + xo0, *x1 = xq + xo1;
    for (int c = 0; c < C; c++, wc += 9, x0 += plane, x1 += plane) {
#pragma GCC unroll 3
        for (int kh = 0; kh < 3; kh++) {
#pragma GCC unroll 3
            for (int kw = 0; kw < 3; kw++) {
                const size_t at = (size_t)kh * dh * Wq + (size_t)kw * dw;
                const float *wt = wc + kh * 3 + kw;
                tg_vec u = tg_load(x0 + at), v = tg_load(x1 + at);
                TG_TAP3_8x2(0) TG_TAP3_8x2(1) TG_TAP3_8x2(2) TG_TAP3_8x2(3)
                TG_TAP3_8x2(4) TG_TAP3_8x2(5) TG_TAP3_8x2(6) TG_TAP3_8x2(7)
            }
        }
    }
    const tg_vec first[8] = {a0, a1, a2, a3, a4, a5, a6, a7}, second[8] = {b0, b1, b2, b3, b4, b5, b6, b7};
    const size_t ps = (size_t)OH * OW;
    float *dst = y + (size_t)k0 * ps;
    for (int b = 0; b < 8; b++, dst += ps) {
        if (n0 >= TG_VEC) tg_store(dst + yo0, first[b]); else tg_store_n(dst + yo0, first[b], n0);
        if (n1 >= TG_VEC) tg_store(dst + yo1, second[b]); else if (n1 > 0) tg_store_n(dst + yo1, second[b], n1);
    }
}

/* The sample's output vectors in row-major order, two at a time (an odd last one is read
 * twice and stored once: n1 = 0). */
static inline void tg_pixel3_forward(const float *xq, int C, int Hq, int Wq, const float *w, int K, int dh,
                                     int dw, float *y, int OH, int OW) {
    int vectors = (OW + TG_VEC - 1) / TG_VEC, total = OH * vectors;
    for (int k0 = 0; k0 < K; k0 += 8)
        for (int i = 0; i < total; i += 2) {
            int j = i + 1 < total ? i + 1 : i;
            int oh0 = i / vectors, ow0 = (i % vectors) * TG_VEC, oh1 = j / vectors, ow1 = (j % vectors) * TG_VEC;
            tg_pixel3_block_8x2(xq, C, Hq, Wq, w, dh, dw, y, OH, OW, k0, (size_t)oh0 * Wq + ow0,
                                (size_t)oh1 * Wq + ow1, (size_t)oh0 * OW + ow0, (size_t)oh1 * OW + ow1,
                                OW - ow0, j > i ? OW - ow1 : 0);
        }
}

static inline void tg_pixel_forward(const float *xq, int C, int Hq, int Wq, const float *w, int K, int KH,
                                    int KW, int dh, int dw, float *y, int OH, int OW) {
#if defined(__AVX512F__)
    if (KH == 3 && KW == 3 && K % 8 == 0) {
        tg_pixel3_forward(xq, C, Hq, Wq, w, K, dh, dw, y, OH, OW);
        return;
    }
#endif
    int vectors = (OW + TG_VEC - 1) / TG_VEC;
    int PV = vectors >= 2 ? 2 : 1;
    int KB = tg_pixel_channels(K, PV);
    for (int k0 = 0; k0 < K; k0 += KB)
        for (int oh = 0; oh < OH; oh++)
            for (int v = 0; v < vectors; v += PV) {
                int ow0 = v * TG_VEC, two = PV == 2 && v + 1 < vectors;
                if (KB == 16) TG_PIXEL_CALL(16, 1);
                else if (KB == 8) { if (two) TG_PIXEL_CALL(8, 2); else TG_PIXEL_CALL(8, 1); }
                else if (KB == 4) { if (two) TG_PIXEL_CALL(4, 2); else TG_PIXEL_CALL(4, 1); }
                else { if (two) TG_PIXEL_CALL(1, 2); else TG_PIXEL_CALL(1, 1); }
            }
}

/* Weight gradient in pixel vectors: part[k][c][kh][kw][lane] += sum over output rows and
 * vectors of xq[c][row + kh dh][col + kw dw] * gy[k][row][col] (grad_y read with the lanes
 * past OW as zeros); the caller sums the lanes. A block keeps KB output channels x KW taps
 * of one (c, kh) in registers: per output vector, KB grad_y loads and KW input loads for
 * KB*KW FMAs. */
#define TG_PIXEL_WEIGHT_BLOCK(KB)                                                                  \
    static inline void tg_pixel_weight_block_##KB(                                                \
        const float *xq, int C, int Hq, int Wq, const float *gy, int S, int OH, int OW, int KW,    \
        int dh, int dw, float *part, int KH, int K, int k0, int c, int kh) {                       \
        tg_vec acc[KB][8];                                                                         \
        for (int b = 0; b < KB; b++)                                                               \
            for (int j = 0; j < KW; j++) acc[b][j] = tg_zero();                                    \
        for (int n = 0; n < S; n++)                                                                \
        for (int oh = 0; oh < OH; oh++) {                                                          \
            const float *xr = xq + (((size_t)n * C + c) * Hq + oh + kh * dh) * Wq;                  \
            for (int ow = 0; ow < OW; ow += TG_VEC) {                                              \
                int left = OW - ow;                                                                \
                tg_vec gv[KB];                                                                     \
                for (int b = 0; b < KB; b++) {                                                     \
                    const float *g = gy + (((size_t)n * K + k0 + b) * OH + oh) * OW + ow;          \
                    gv[b] = left >= TG_VEC ? tg_load(g) : tg_load_n(g, left);                      \
                }                                                                                  \
                for (int j = 0; j < KW; j++) {                                                     \
                    tg_vec xv = tg_load(xr + ow + j * dw);                                         \
                    for (int b = 0; b < KB; b++) acc[b][j] = tg_fma(xv, gv[b], acc[b][j]);         \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (int b = 0; b < KB; b++)                                                               \
            for (int j = 0; j < KW; j++) {                                                         \
                float *o = part + ((((size_t)(k0 + b) * C + c) * KH + kh) * KW + j) * TG_VEC;      \
                tg_store(o, tg_add(tg_load(o), acc[b][j]));                                        \
            }                                                                                      \
    }

TG_PIXEL_WEIGHT_BLOCK(4)
TG_PIXEL_WEIGHT_BLOCK(1)

/* The common 3-wide kernel with its taps' count known to the compiler: 4 output channels x
 * 2 input channels x 3 taps = 24 accumulators; per output vector 4 grad_y and 6 input loads
 * for 24 FMAs (measured 1.6x the generic block's speed at 16 channels).
 *
 * The accumulators are 24 named variables, not an array: with an array gcc kept them in
 * registers but also stored all 24 to the stack on every iteration (the loop bounds are
 * runtime values in the extension), so the store port, one per cycle, set the pace: 44
 * GFLOP/s against 67-93 with named variables (one thread, 16 samples, 16 channels 32x32,
 * built with Python's -fPIC flags; a harness compiled without -fPIC hid it, since gcc then
 * propagated its constant shapes into the loop). */
#define TG_TAP_4x2(xa, xb, g0, g1, g2, g3, j)                                                    \
    a##0##0##j = tg_fma(xa, g0, a##0##0##j); a##0##1##j = tg_fma(xb, g0, a##0##1##j);            \
    a##1##0##j = tg_fma(xa, g1, a##1##0##j); a##1##1##j = tg_fma(xb, g1, a##1##1##j);            \
    a##2##0##j = tg_fma(xa, g2, a##2##0##j); a##2##1##j = tg_fma(xb, g2, a##2##1##j);            \
    a##3##0##j = tg_fma(xa, g3, a##3##0##j); a##3##1##j = tg_fma(xb, g3, a##3##1##j);

static inline void tg_pixel_weight_block_4x2x3(const float *xq, int C, int Hq, int Wq, const float *gy, int S,
                                               int OH, int OW, int dh, int dw, float *part, int KH, int K,
                                               int k0, int c0, int kh) {
    /* a<b><a><j>: output channel k0 + b, input channel c0 + a, tap j */
    tg_vec a000 = tg_zero(), a001 = tg_zero(), a002 = tg_zero(), a010 = tg_zero(), a011 = tg_zero(),
           a012 = tg_zero(), a100 = tg_zero(), a101 = tg_zero(), a102 = tg_zero(), a110 = tg_zero(),
           a111 = tg_zero(), a112 = tg_zero(), a200 = tg_zero(), a201 = tg_zero(), a202 = tg_zero(),
           a210 = tg_zero(), a211 = tg_zero(), a212 = tg_zero(), a300 = tg_zero(), a301 = tg_zero(),
           a302 = tg_zero(), a310 = tg_zero(), a311 = tg_zero(), a312 = tg_zero();
    const size_t plane = (size_t)OH * OW, x_plane = (size_t)Hq * Wq;
    for (int n = 0; n < S; n++)
    for (int oh = 0; oh < OH; oh++) {
        const float *x0 = xq + (((size_t)n * C + c0) * Hq + oh + kh * dh) * Wq;
        const float *g = gy + (((size_t)n * K + k0) * OH + oh) * OW;
        for (int ow = 0; ow < OW; ow += TG_VEC) {
            int left = OW - ow;
            tg_vec g0, g1, g2, g3;
            if (left >= TG_VEC) {
                g0 = tg_load(g + ow); g1 = tg_load(g + plane + ow);
                g2 = tg_load(g + 2 * plane + ow); g3 = tg_load(g + 3 * plane + ow);
            } else {
                g0 = tg_load_n(g + ow, left); g1 = tg_load_n(g + plane + ow, left);
                g2 = tg_load_n(g + 2 * plane + ow, left); g3 = tg_load_n(g + 3 * plane + ow, left);
            }
            const float *xa = x0 + ow, *xb = xa + x_plane;
            tg_vec u = tg_load(xa), v = tg_load(xb);
            TG_TAP_4x2(u, v, g0, g1, g2, g3, 0)
            u = tg_load(xa + dw); v = tg_load(xb + dw);
            TG_TAP_4x2(u, v, g0, g1, g2, g3, 1)
            u = tg_load(xa + 2 * dw); v = tg_load(xb + 2 * dw);
            TG_TAP_4x2(u, v, g0, g1, g2, g3, 2)
        }
    }
    const tg_vec acc[4][2][3] = {{{a000, a001, a002}, {a010, a011, a012}}, {{a100, a101, a102}, {a110, a111, a112}},
                                 {{a200, a201, a202}, {a210, a211, a212}}, {{a300, a301, a302}, {a310, a311, a312}}};
    for (int b = 0; b < 4; b++)
        for (int a = 0; a < 2; a++)
            for (int j = 0; j < 3; j++) {
                float *o = part + ((((size_t)(k0 + b) * C + c0 + a) * KH + kh) * 3 + j) * TG_VEC;
                tg_store(o, tg_add(tg_load(o), acc[b][a][j]));
            }
}

/* S samples at once: xq (S, C, Hq, Wq) and gy (S, K, OH, OW), so that a block's pixel loop
 * runs over S * OH rows: with one vector a row (32 channels 16x16) a block summed only 16
 * of them before it added its 24 sums to part, and ran at 70 GFLOP/s on one thread against
 * 87 with 64 (16 channels 32x32). KW <= 8 (the blocks' register budget); part (K, C, KH,
 * KW, TG_VEC) floats. */
static inline void tg_pixel_weight_grad(const float *xq, int C, int Hq, int Wq, const float *gy, int S, int K,
                                        int OH, int OW, int KH, int KW, int dh, int dw, float *part) {
    if (KW == 3 && K % 4 == 0 && C % 2 == 0) {
        for (int k0 = 0; k0 < K; k0 += 4)
            for (int c0 = 0; c0 < C; c0 += 2)
                for (int kh = 0; kh < KH; kh++)
                    tg_pixel_weight_block_4x2x3(xq, C, Hq, Wq, gy, S, OH, OW, dh, dw, part, KH, K, k0, c0, kh);
        return;
    }
    int KB = K % 4 == 0 ? 4 : 1;
    for (int k0 = 0; k0 < K; k0 += KB)
        for (int c = 0; c < C; c++)
            for (int kh = 0; kh < KH; kh++) {
                if (KB == 4) tg_pixel_weight_block_4(xq, C, Hq, Wq, gy, S, OH, OW, KW, dh, dw, part, KH, K, k0, c, kh);
                else tg_pixel_weight_block_1(xq, C, Hq, Wq, gy, S, OH, OW, KW, dh, dw, part, KH, K, k0, c, kh);
            }
}

/* sums[i] = the TG_VEC lanes of lanes[i] added up, for i < count. */
static inline void tg_sum_lanes(const float *lanes, size_t count, float *sums) {
    for (size_t i = 0; i < count; i++) sums[i] = tg_sum(tg_load(lanes + i * TG_VEC));
}

/* xq (C, Hq, Wq) = planes (C, H, W) at offset (top, left) of a zero frame (rows copied whole). */
static inline void tg_pad_planes(const float *restrict planes, int C, int H, int W, float *restrict xq, int Hq,
                                 int Wq, int top, int left) {
    memset(xq, 0, (size_t)C * Hq * Wq * sizeof(float));
    int w_lo = left < 0 ? -left : 0, w_hi = W < Wq - left ? W : Wq - left;
    if (w_hi <= w_lo) return;
    for (int c = 0; c < C; c++)
        for (int h = 0; h < H; h++) {
            int hq = h + top;
            if (hq < 0 || hq >= Hq) continue;
            memcpy(xq + ((size_t)c * Hq + hq) * Wq + left + w_lo, planes + ((size_t)c * H + h) * W + w_lo,
                   (size_t)(w_hi - w_lo) * sizeof(float));
        }
}

/* ------------------------------------------------------------------------ layouts */
/* xp (Hp, Wp, Cp) = planes (C, H, W) at offset (top, left) of a zero frame, channels last;
 * rows and columns the windows never reach are left out. Tiles of 8 rows of a plane x 8
 * channels keep both sides' cache lines in L1. */
static inline void tg_pad_channels_last(const float *restrict planes, int C, int H, int W,
                                        float *restrict xp, int Hp, int Wp, int Cp, int top, int left) {
    memset(xp, 0, (size_t)Hp * Wp * Cp * sizeof(float));
    int w_lo = left < 0 ? -left : 0, w_hi = W < Wp - left ? W : Wp - left;
    for (int h = 0; h < H; h++) {
        int hp = h + top;
        if (hp < 0 || hp >= Hp) continue;
        float *row = xp + ((size_t)hp * Wp + left) * Cp;
        for (int c0 = 0; c0 < C; c0 += 8) {
            int c1 = c0 + 8 < C ? c0 + 8 : C;
            for (int w = w_lo; w < w_hi; w++)
                for (int c = c0; c < c1; c++) row[(size_t)w * Cp + c] = planes[((size_t)c * H + h) * W + w];
        }
    }
}

/* y (K, OH, OW) = yt (OH, OWp, K) transposed, dropping the columns past OW. */
static inline void tg_unpack_channels_last(const float *restrict yt, int OH, int OWp, int K,
                                           float *restrict y, int OW) {
    for (int oh = 0; oh < OH; oh++)
        for (int ow0 = 0; ow0 < OW; ow0 += 16) {
            int ow1 = ow0 + 16 < OW ? ow0 + 16 : OW;
            for (int k = 0; k < K; k++) {
                float *dst = y + ((size_t)k * OH + oh) * OW;
                for (int ow = ow0; ow < ow1; ow++) dst[ow] = yt[((size_t)oh * OWp + ow) * K + k];
            }
        }
}

/* gt (P, K) = g (K, P) transposed, in 16 x 16 tiles. */
static inline void tg_transpose(const float *restrict g, int K, int P, float *restrict gt) {
    for (int p0 = 0; p0 < P; p0 += 16) {
        int p1 = p0 + 16 < P ? p0 + 16 : P;
        for (int k0 = 0; k0 < K; k0 += 16) {
            int k1 = k0 + 16 < K ? k0 + 16 : K;
            for (int p = p0; p < p1; p++)
                for (int k = k0; k < k1; k++) gt[(size_t)p * K + k] = g[(size_t)k * P + p];
        }
    }
}

#endif
