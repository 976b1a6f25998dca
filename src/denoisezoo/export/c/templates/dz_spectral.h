/* The spectral side of the same model, for bindings that do their own STFT (the Python
   Streamer's `c` backend): one STFT frame of dz_n_freqs() bins through the network. Not part
   of the public API in denoisezoo.h, but exported by libdenoisezoo.so. */
#ifndef DZ_SPECTRAL_H
#define DZ_SPECTRAL_H

#include "denoisezoo.h"

#ifdef __cplusplus
extern "C" {
#endif

DZ_EXPORT int dz_fft_size(void);
DZ_EXPORT int dz_n_freqs(void);
/* spec_in, spec_out: dz_n_freqs() (re, im) pairs (the windowed, unnormalised rfft of a frame);
   advances the network state only (no attenuation limit); returns the speech probability. */
DZ_EXPORT float dz_process_spectrum(DzModel *m, const float *spec_in, float *spec_out);

#ifdef __cplusplus
}
#endif

#endif
