/* Vectorised fp32 math shared by the kernels: erf, GELU and exp on vectors of 8 floats (gcc/clang vector
   extensions: AVX2 with -march=native, or what the target has), and GELU over arrays of any length. */

#ifndef MIRAGE_VECTOR_MATH_H
#define MIRAGE_VECTOR_MATH_H

typedef float float8 __attribute__((vector_size(32), aligned(4))); /* 8 floats, unaligned loads and stores */
typedef int int8 __attribute__((vector_size(32), aligned(4)));

/* erf(x): Eigen's / XLA's rational approximation on [-4, 4] (|error| < 1e-7; erf is ±1 in fp32 beyond). */
#define ERF_NUMERATOR(p, x2)                                                                                     \
    p = (x2) * -2.72614225801306e-10f + 2.77068142495902e-08f;                                                 \
    p = p * (x2) - 2.10102402082508e-06f;                                                                      \
    p = p * (x2) - 5.69250639462346e-05f;                                                                      \
    p = p * (x2) - 7.34990630326855e-04f;                                                                      \
    p = p * (x2) - 2.95459980854025e-03f;                                                                      \
    p = p * (x2) - 1.60960333262415e-02f
#define ERF_DENOMINATOR(q, x2)                                                                                   \
    q = (x2) * -1.45660718464996e-05f - 2.13374055278905e-04f;                                                 \
    q = q * (x2) - 1.68282697438203e-03f;                                                                      \
    q = q * (x2) - 7.37332916720468e-03f;                                                                      \
    q = q * (x2) - 1.42647390514189e-02f

static inline float8 clamp8(float8 x, float low, float high) {
    const float8 lows = x - x + low, highs = x - x + high;
    const int8 below = x < lows, above = x > highs;
    x = (float8)(((int8)x & ~below) | ((int8)lows & below));
    return (float8)(((int8)x & ~above) | ((int8)highs & above));
}

static inline float8 erf8(float8 x) {
    x = clamp8(x, -4.0f, 4.0f);
    const float8 x2 = x * x;
    float8 p, q;
    ERF_NUMERATOR(p, x2);
    ERF_DENOMINATOR(q, x2);
    return x * p / q;
}

/* GELU(x) = x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2))), the exact (erf) form. */
static inline float8 gelu8(float8 x) { return 0.5f * x * (1.0f + erf8(x * 0.7071067811865476f)); }

/* The last 1-7 elements of an array as a vector (zeros beyond), and back. */
static inline float8 load_partial(const float *source, long count) {
    float8 values = {0};
    for (long lane = 0; lane < count; lane++) values[lane] = source[lane];
    return values;
}

static inline void store_partial(float *target, float8 values, long count) {
    for (long lane = 0; lane < count; lane++) target[lane] = values[lane];
}

/* target[i] = GELU(source[i]). From 8 elements on, the last vector overlaps the one before (the target does not
   alias the source, so writing some elements twice is harmless); shorter arrays go through a local copy. */
static inline void gelu_array(const float *restrict source, float *restrict target, long count) {
    if (count < 8) {
        store_partial(target, gelu8(load_partial(source, count)), count);
        return;
    }
    for (long block = 0; block < count; block += 8) {
        const long i = block + 8 > count ? count - 8 : block;
        *(float8 *)(target + i) = gelu8(*(const float8 *)(source + i));
    }
}

/* target[i] = GELU(gate[i]) * value[i], in the same way. */
static inline void gelu_product_array(const float *restrict gate, const float *restrict value, float *restrict target,
                                      long count) {
    if (count < 8) {
        store_partial(target, gelu8(load_partial(gate, count)) * load_partial(value, count), count);
        return;
    }
    for (long block = 0; block < count; block += 8) {
        const long i = block + 8 > count ? count - 8 : block;
        *(float8 *)(target + i) = gelu8(*(const float8 *)(gate + i)) * *(const float8 *)(value + i);
    }
}

/* exp(x): 2^n * P(r) with x = n ln2 + r, |r| <= ln2 / 2 (Cephes' expf polynomial, |error| < 2 ulp). x is clamped to
   [-87, 87] (exp is then 1.6e-38 to 6e37, no overflow or denormal); n + 128 > 0 there, so truncation floors. */
static inline float8 exp8(float8 x) {
    x = clamp8(x, -87.0f, 87.0f);
    const int8 n = __builtin_convertvector(x * 1.44269504088896341f + 128.5f, int8) - 128;
    const float8 whole = __builtin_convertvector(n, float8);
    const float8 r = (x - whole * 0.693359375f) + whole * 2.12194440e-4f;
    float8 p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    return p * (float8)((n + 127) << 23);
}

#endif
