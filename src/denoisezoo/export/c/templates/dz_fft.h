/* Real FFT of the model's frame size (DZ_N_FFT, any even size): a mixed-radix Stockham complex
   FFT of DZ_N_FFT / 2 points (radix 4, 2, 3, 5 butterflies, a plain DFT butterfly for any
   other prime factor) and the usual real <-> half-size complex packing.

   Conventions are those of numpy / torch: dz_rfft gives the unnormalised forward transform
   X[k] = sum_n x[n] exp(-2 pi i k n / N), k = 0 .. N / 2; dz_irfft is its inverse (scaled by
   1 / N) and, like irfft, ignores the imaginary parts of the DC and Nyquist bins. Spectra are
   interleaved (re, im) pairs. */
#ifndef DZ_FFT_H
#define DZ_FFT_H

#include "dz_config.h"

#define DZ_FFT_NC (DZ_N_FFT / 2)      /* points of the complex FFT */
#define DZ_FFT_MAX_STAGES 32

typedef struct {
    int n_stages;
    int radix[DZ_FFT_MAX_STAGES];
    float twiddle[4 * DZ_FFT_NC];     /* per stage, w_n^(j k) for j < n / p, 0 < k < p (< 2 NC) */
    float roots[2 * DZ_FFT_NC];       /* per stage, exp(-2 pi i q / p) for q < p */
    float post[2 * (DZ_FFT_NC + 1)];  /* exp(-2 pi i k / N), k = 0 .. NC (real-FFT packing) */
    float work[2][2 * DZ_FFT_NC];
} DzFft;

void dz_fft_init(DzFft *f);
/* x: DZ_N_FFT samples -> X: DZ_N_FFT / 2 + 1 bins (interleaved). */
void dz_rfft(DzFft *f, const float *x, float *X);
/* X: DZ_N_FFT / 2 + 1 bins (interleaved) -> x: DZ_N_FFT samples. */
void dz_irfft(DzFft *f, const float *X, float *x);

#endif
