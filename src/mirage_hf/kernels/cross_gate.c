/* The mixer's cross-gating for CPU inference, in one pass: for the three branch outputs a, g, m of one sample
   (channels-last, b channels each),

       output = [a + alpha_a * sigmoid(g + m),  g + alpha_g * sigmoid(a + m),  m + alpha_m * sigmoid(a + g)]

   Why by hand: with PyTorch's ops this is nine passes over feature maps (sums, sigmoids, scaled sums) and three
   temporaries; here it is one read of each branch and one write. */

#include <omp.h>

#include "vector_math.h"

static inline float8 sigmoid8(float8 x) { return 1.0f / (1.0f + exp8(-x)); }

/* attention, gated, mlp: [pixels, b] each; output: [pixels, 3b]. */
void mirage_cross_gate(const float *attention, const float *gated, const float *mlp, long pixels, long branch,
                       float alpha_attention, float alpha_gated, float alpha_mlp, float *output, int threads) {
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (long pixel = 0; pixel < pixels; pixel++) {
        const float *a = attention + pixel * branch, *g = gated + pixel * branch, *m = mlp + pixel * branch;
        float *out = output + pixel * 3 * branch;
        /* blocks of 8 channels; the last block overlaps the one before instead of running past the pixel */
        for (long block = 0; branch >= 8 && block < branch; block += 8) {
            const long k = block + 8 > branch ? branch - 8 : block;
            const float8 a8 = *(const float8 *)(a + k), g8 = *(const float8 *)(g + k), m8 = *(const float8 *)(m + k);
            *(float8 *)(out + k) = a8 + alpha_attention * sigmoid8(g8 + m8);
            *(float8 *)(out + branch + k) = g8 + alpha_gated * sigmoid8(a8 + m8);
            *(float8 *)(out + 2 * branch + k) = m8 + alpha_mlp * sigmoid8(a8 + g8);
        }
        if (branch < 8) { /* narrow test models: through a local copy */
            const float8 a8 = load_partial(a, branch), g8 = load_partial(g, branch), m8 = load_partial(m, branch);
            store_partial(out, a8 + alpha_attention * sigmoid8(g8 + m8), branch);
            store_partial(out + branch, g8 + alpha_gated * sigmoid8(a8 + m8), branch);
            store_partial(out + 2 * branch, m8 + alpha_mlp * sigmoid8(a8 + g8), branch);
        }
    }
}
