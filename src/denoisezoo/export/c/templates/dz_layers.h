/* The layer types of a generated denoisezoo network and the functions that compute them, one
   frame at a time, in the manner of RNNoise's rnn.h: each layer is a const struct of sizes and
   pointers into the weight tables of dz_weights.c. Activations are planes [channels][bins]
   (bins contiguous), so every inner loop runs over bins. No function allocates; `scratch` is
   DZ_SCRATCH floats of working memory owned by the caller. */
#ifndef DZ_LAYERS_H
#define DZ_LAYERS_H

#include <stddef.h>

#include "dz_config.h"

enum { DZ_ACT_NONE = 0, DZ_ACT_PRELU = 1, DZ_ACT_TANH = 2, DZ_ACT_SIGMOID = 3 };

/* Convolution over the bins of a plane (a (1, kernel) Conv2d, BatchNorm folded in; kernel 1 is
   a per-bin dense layer), or the transposed convolution; weight [n_out][n_in / groups][kernel]. */
typedef struct {
    const float *weight;
    const float *bias;
    const float *prelu;  /* n_out slopes for DZ_ACT_PRELU, else NULL */
    int n_in, n_out, kernel, stride, pad, groups, transposed, activation;
} DzConv;

/* Depthwise causal conv over (time, frequency), BatchNorm folded in: 3 time taps `dilation`
   frames apart (oldest first) by 3 frequency taps; weight [channels][3][3], then PReLU. */
typedef struct {
    const float *weight;
    const float *bias;
    const float *prelu;
    int channels, dilation, pad;
} DzDepthConv;

/* Fully connected layer on a vector, weight [n_in][n_out] (transposed: loops over outputs). */
typedef struct {
    const float *weight;
    const float *bias;
    int n_in, n_out, activation;
} DzDense;

/* A GRU layer as torch.nn.GRU (gates r, z, n), weights transposed: w_ih [n_in][3 n_hidden],
   w_hh [n_hidden][3 n_hidden]. Without w_ih, only the recurrence of a GRU whose input
   projections come from a DzConv (see compute_bigru_plane). */
typedef struct {
    const float *w_ih, *w_hh, *b_ih, *b_hh;
    int n_in, n_hidden;
} DzGru;

/* LayerNorm over all n values of a plane (GTCRN normalises a whole (bins, channels) plane). */
typedef struct {
    const float *weight, *bias;
    int n;
    float eps;
} DzLayerNorm;

/* ERB bands over the bins above `low`: band b has len[b] weights weight[offset[b] + j] on bins
   low + start[b] + j. Merging keeps the low bins and sums each band; splitting spreads each
   band back onto its bins with the same weights (GTCRN's ERB.bm / ERB.bs). */
typedef struct {
    const int *start, *len, *offset;
    const float *weight;
    int low, n_bands, n_high;
} DzErb;

void compute_activation(float *x, int n, int activation, float prelu);
void compute_conv(const DzConv *l, const float *x, int w_in, float *y, int w_out, float *scratch);
void compute_depth_conv(const DzDepthConv *l, const float *oldest, const float *middle,
                        const float *current, int w, float *y, float *scratch);
void compute_dense(const DzDense *l, const float *x, float *y);
void compute_gru(const DzGru *g, const float *x, float *h);
void compute_gru_plane(const float *gi, const float *gh, float *h, int n_hidden, int n_groups,
                       int w);
void compute_bigru_plane(const DzGru *g, const float *gi, int w, float *y);
void compute_layer_norm(const DzLayerNorm *l, float *x);
void compute_erb_merge(const DzErb *e, const float *x, float *y);
void compute_erb_split(const DzErb *e, const float *x, float *y);

#endif
