/* The middle of MIRAGE's feed-forward network for CPU inference, in one pass over the projected features:

       product = GELU(dwconv_gate(GELU(x_gate))) * dwconv_value(GELU(x_value))

   where x = [x_gate, x_value] is the output of the 1x1 `project_in` convolution (2h channels, channels-last) and
   dwconv is the 3x3 depthwise convolution with zero padding. Why by hand: no library fuses a GELU into the input
   of a depthwise convolution, and oneDNN's exact-GELU post-op costs about as much as all of the FFN's convolutions
   together on a few cores; the rational erf of vector_math.h is 2-4x cheaper at the same fp32 accuracy.

   Built at first use by mirage_hf.cpu_kernels with the system C compiler (-O3 -march=native -fopenmp) and run on
   the OpenMP threads PyTorch already has (libgomp is loaded once per process). */

#include <omp.h>
#include <string.h>

#include "vector_math.h"

/* Scratch per thread: a ring of three rows and a zero row, each (width + 2) x 2h, and one pixel's 2h sums. */
long mirage_gated_depthwise_scratch_floats(long width, long hidden) { return 4 * (width + 2) * 2 * hidden + 2 * hidden; }

/* Output rows [first, last) of one band, on one thread. A ring of three GELU'd input rows, each with a zero column
   on either side, keeps the 3x3 window in cache; rows outside [0, rows) read a zero row (the conv's padding).
   buffer: this thread's scratch of mirage_gated_depthwise_scratch_floats(width, hidden) floats. */
static void gated_depthwise_rows(const float *projected, long rows, long width, long hidden, const float *weight,
                                 const float *bias, long first, long last, float *product, float *buffer) {
    const long channels = 2 * hidden, row_length = (width + 2) * channels;
    memset(buffer, 0, mirage_gated_depthwise_scratch_floats(width, hidden) * sizeof(float));
    float *ring = buffer, *zero_row = buffer + 3 * row_length, *convolved = zero_row + row_length;
    long ring_rows[3] = {-2, -2, -2};
    for (long row = first; row < last; row++) {
        const float *window[3];
        for (int dy = 0; dy < 3; dy++) {
            const long source_row = row + dy - 1;
            if (source_row < 0 || source_row >= rows) {
                window[dy] = zero_row;
                continue;
            }
            float *slot = ring + (source_row % 3) * row_length;
            if (ring_rows[source_row % 3] != source_row) {
                gelu_array(projected + source_row * width * channels, slot + channels, width * channels);
                ring_rows[source_row % 3] = source_row;
            }
            window[dy] = slot;
        }
        float *product_row = product + (row - first) * width * hidden;
        for (long x = 0; x < width; x++) {
            long c = 0;
            for (; c + 16 <= channels; c += 16) { /* two vectors of 8 channels through the nine taps */
                float8 sum0 = {0}, sum1 = {0};
                if (bias != NULL) {
                    sum0 = *(const float8 *)(bias + c);
                    sum1 = *(const float8 *)(bias + c + 8);
                }
                for (int dy = 0; dy < 3; dy++) {
                    const float *source = window[dy] + x * channels + c;
                    const float *taps = weight + dy * 3 * channels + c;
                    for (int dx = 0; dx < 3; dx++) {
                        sum0 += *(const float8 *)(source + dx * channels) * *(const float8 *)(taps + dx * channels);
                        sum1 += *(const float8 *)(source + dx * channels + 8) * *(const float8 *)(taps + dx * channels + 8);
                    }
                }
                *(float8 *)(convolved + c) = sum0;
                *(float8 *)(convolved + c + 8) = sum1;
            }
            for (; c + 8 <= channels; c += 8) {
                float8 sum = {0};
                if (bias != NULL) sum = *(const float8 *)(bias + c);
                for (int dy = 0; dy < 3; dy++)
                    for (int dx = 0; dx < 3; dx++)
                        sum += *(const float8 *)(window[dy] + (x + dx) * channels + c) *
                               *(const float8 *)(weight + (dy * 3 + dx) * channels + c);
                *(float8 *)(convolved + c) = sum;
            }
            for (; c < channels; c++) {
                float sum = bias != NULL ? bias[c] : 0.0f;
                for (int dy = 0; dy < 3; dy++)
                    for (int dx = 0; dx < 3; dx++)
                        sum += window[dy][(x + dx) * channels + c] * weight[(dy * 3 + dx) * channels + c];
                convolved[c] = sum;
            }
            gelu_product_array(convolved, convolved + hidden, product_row + x * hidden, hidden);
        }
    }
}


/* projected: [rows, width, 2h] (one sample's band of `project_in` output, channels-last, dense).
   weight: [3, 3, 2h] (the depthwise weight, tap-major); bias: [2h] or NULL.
   product: [last - first, width, h], receives rows [first, last) of the band.
   scratch: threads × mirage_gated_depthwise_scratch_floats(width, hidden) floats. */
void mirage_gated_depthwise(const float *projected, long rows, long width, long hidden, const float *weight,
                            const float *bias, long first, long last, float *product, float *scratch, int threads) {
    const long count = last - first;
    #pragma omp parallel num_threads(threads)
    {
        const long team = omp_get_num_threads(), member = omp_get_thread_num();
        const long begin = first + count * member / team, end = first + count * (member + 1) / team;
        if (end > begin)
            gated_depthwise_rows(projected, rows, width, hidden, weight, bias, begin, end,
                                 product + (begin - first) * width * hidden,
                                 scratch + member * mirage_gated_depthwise_scratch_floats(width, hidden));
    }
}
