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
#endif

/* Channels padded to a multiple of TG_CB for the weight-gradient blocks. */
#define TG_CB 4

/* --------------------------------------------------------------------------- forward */
/* One block: PB output pixels (ow0 .. ow0 + PB - 1 of row oh) x KB vectors of output
 * channels (k0 .. k0 + KB*VEC - 1). */
#define TG_FORWARD_BLOCK(PB, KB)                                                                   \
    static inline void tg_forward_block_##PB##x##KB(                                              \
        const float *xp, int Wp, int Cp, const float *w, int KH, int KW, int K, float *y, int OWp, \
        int oh, int ow0, int k0, int sh, int sw, int dh, int dw) {                                 \
        tg_vec acc[PB][KB];                                                                        \
        for (int p = 0; p < PB; p++)                                                               \
            for (int b = 0; b < KB; b++) acc[p][b] = tg_zero();                                    \
        for (int kh = 0; kh < KH; kh++)                                                            \
            for (int kw = 0; kw < KW; kw++) {                                                      \
                const float *xr = xp + ((size_t)(oh * sh + kh * dh) * Wp + ow0 * sw + kw * dw) * Cp;\
                const float *wr = w + (size_t)(kh * KW + kw) * Cp * K + k0;                        \
                for (int c = 0; c < Cp; c++) {                                                     \
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
TG_FORWARD_BLOCK(8, 2)
TG_FORWARD_BLOCK(4, 4)

/* The output pixels a forward block covers (OWp must be a multiple of it). */
static inline int tg_forward_pixels(int K) { return (K % (4 * TG_VEC) == 0) ? 4 : 8; }

static inline void tg_direct_forward(const float *xp, int Wp, int Cp, const float *w, int KH, int KW,
                                     int K, float *y, int OH, int OWp, int sh, int sw, int dh, int dw) {
    if (K % (4 * TG_VEC) == 0) {
        for (int k0 = 0; k0 < K; k0 += 4 * TG_VEC)  /* one weight block stays in cache */
            for (int oh = 0; oh < OH; oh++)
                for (int ow0 = 0; ow0 < OWp; ow0 += 4)
                    tg_forward_block_4x4(xp, Wp, Cp, w, KH, KW, K, y, OWp, oh, ow0, k0, sh, sw, dh, dw);
    } else if (K % (2 * TG_VEC) == 0) {
        for (int k0 = 0; k0 < K; k0 += 2 * TG_VEC)
            for (int oh = 0; oh < OH; oh++)
                for (int ow0 = 0; ow0 < OWp; ow0 += 8)
                    tg_forward_block_8x2(xp, Wp, Cp, w, KH, KW, K, y, OWp, oh, ow0, k0, sh, sw, dh, dw);
    } else {
        for (int k0 = 0; k0 < K; k0 += TG_VEC)
            for (int oh = 0; oh < OH; oh++)
                for (int ow0 = 0; ow0 < OWp; ow0 += 8)
                    tg_forward_block_8x1(xp, Wp, Cp, w, KH, KW, K, y, OWp, oh, ow0, k0, sh, sw, dh, dw);
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
