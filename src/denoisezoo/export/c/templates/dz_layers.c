/* Layer computations (see dz_layers.h). The inner loops run over contiguous bins or output
   units, so the compiler can vectorise them; the nonlinearities use dz_exp, a branch-free
   exponential the compiler vectorises too (relative error about 1e-7). */
#include <math.h>
#include <string.h>

#include "dz_layers.h"

/* exp(x), Cephes' single-precision polynomial after the range reduction x = n ln 2 + r. */
static inline float dz_exp(float x)
{
    float n, r, p, scale;
    int bits;
    x = x > -87.0f ? x : -87.0f;  /* also maps NaN to a defined value */
    x = x < 88.0f ? x : 88.0f;
    n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  /* round to nearest */
    r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    bits = ((int)n + 127) << 23;  /* 2^n */
    memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

static inline float dz_sigmoid(float x)
{
    return 1.0f / (1.0f + dz_exp(-x));
}

static inline float dz_tanh(float x)
{
    return 2.0f / (1.0f + dz_exp(-2.0f * x)) - 1.0f;
}

void compute_activation(float *x, int n, int activation, float prelu)
{
    int i;
    if (activation == DZ_ACT_PRELU) {
        for (i = 0; i < n; i++)
            x[i] = x[i] > 0.0f ? x[i] : prelu * x[i];
    } else if (activation == DZ_ACT_TANH) {
        for (i = 0; i < n; i++)
            x[i] = dz_tanh(x[i]);
    } else if (activation == DZ_ACT_SIGMOID) {
        for (i = 0; i < n; i++)
            x[i] = dz_sigmoid(x[i]);
    }
}

/* y[0:n] += sum_j w[j] x[j][0:n], four taps per pass over y. */
static void add_taps(float *restrict y, const float *const *x, const float *w, int n_taps, int n)
{
    int j = 0, m;
    for (; j + 4 <= n_taps; j += 4) {
        const float *restrict a = x[j], *restrict b = x[j + 1], *restrict c = x[j + 2];
        const float *restrict d = x[j + 3];
        const float wa = w[j], wb = w[j + 1], wc = w[j + 2], wd = w[j + 3];
        for (m = 0; m < n; m++)
            y[m] += wa * a[m] + wb * b[m] + wc * c[m] + wd * d[m];
    }
    for (; j + 2 <= n_taps; j += 2) {
        const float *restrict a = x[j], *restrict b = x[j + 1];
        const float wa = w[j], wb = w[j + 1];
        for (m = 0; m < n; m++)
            y[m] += wa * a[m] + wb * b[m];
    }
    for (; j < n_taps; j++) {
        const float *restrict a = x[j];
        const float wa = w[j];
        for (m = 0; m < n; m++)
            y[m] += wa * a[m];
    }
}

/* Copy x[src0 + j step], j < len, to y, zeros where the index leaves [0, n). */
static void stage_row(float *restrict y, const float *restrict x, int n, int src0, int step, int len)
{
    int j0 = src0 >= 0 ? 0 : (-src0 + step - 1) / step;
    int j1 = src0 < n ? (n - 1 - src0) / step + 1 : 0, j;
    if (j0 > len) j0 = len;
    if (j1 > len) j1 = len;
    if (j1 < j0) j1 = j0;
    for (j = 0; j < j0; j++)
        y[j] = 0.0f;
    for (j = j0; j < j1; j++)
        y[j] = x[src0 + j * step];
    for (j = j1; j < len; j++)
        y[j] = 0.0f;
}

/* A stride-s conv reads bin m s + t - pad, i.e. bin m + t / s of phase t % s of the padded
   input: each input channel is staged as its s zero-padded phases, and every (input, tap)
   pair of a group is one contiguous row. A transposed conv writes bin j s + t - pad: output
   phase r (bins n' s + r) reads x[n' + (r + pad - t) / s] for the taps t with (r + pad - t)
   divisible by s, a stride-1 conv per phase, interleaved at the end. */
void compute_conv(const DzConv *l, const float *x, int w_in, float *y, int w_out, float *scratch)
{
    const int cin = l->n_in / l->groups, cout = l->n_out / l->groups, k = l->kernel;
    const int s = l->stride, pad = l->pad;
    const float *rows[DZ_MAX_TAPS];
    float wt[DZ_MAX_TAPS];
    int o, i, t, m, c, r, g, nt;

    if (!l->transposed) {
        const int len = w_out + (k - 1) / s + 1;
        if (s == 1 && pad == 0 && k == 1) {  /* per-bin dense: the plane itself */
            for (g = 0; g < l->groups; g++) {
                for (i = 0; i < cin; i++)
                    rows[i] = x + (g * cin + i) * w_in;
                for (o = g * cout; o < (g + 1) * cout; o++) {
                    float *yo = y + o * w_out;
                    for (m = 0; m < w_out; m++)
                        yo[m] = l->bias[o];
                    add_taps(yo, rows, l->weight + o * cin, cin, w_out);
                    compute_activation(yo, w_out, l->activation, l->prelu ? l->prelu[o] : 0.0f);
                }
            }
            return;
        }
        for (c = 0; c < l->n_in; c++)
            for (r = 0; r < s; r++)
                stage_row(scratch + (c * s + r) * len, x + c * w_in, w_in, r - pad, s, len);
        for (g = 0; g < l->groups; g++) {
            for (i = 0; i < cin; i++)
                for (t = 0; t < k; t++)
                    rows[i * k + t] = scratch + ((g * cin + i) * s + t % s) * len + t / s;
            for (o = g * cout; o < (g + 1) * cout; o++) {
                float *yo = y + o * w_out;
                for (m = 0; m < w_out; m++)
                    yo[m] = l->bias[o];
                add_taps(yo, rows, l->weight + o * cin * k, cin * k, w_out);
                compute_activation(yo, w_out, l->activation, l->prelu ? l->prelu[o] : 0.0f);
            }
        }
    } else {
        const int lead = (k - 1) / s + 1, n_ph = (w_out + s - 1) / s;
        const int len = n_ph + lead + (pad + s) / s + 1;
        float *acc = scratch + l->n_in * len;  /* one output phase */
        for (c = 0; c < l->n_in; c++)
            stage_row(scratch + c * len, x + c * w_in, w_in, -lead, 1, len);
        for (g = 0; g < l->groups; g++) {
            for (r = 0; r < s; r++) {
                const int n = (w_out - r + s - 1) / s;
                for (i = 0, nt = 0; i < cin; i++)
                    for (t = 0; t < k; t++)
                        if ((r + pad - t) % s == 0)
                            rows[nt++] = scratch + (g * cin + i) * len + lead + (r + pad - t) / s;
                for (o = g * cout; o < (g + 1) * cout; o++) {
                    const float *w = l->weight + o * cin * k;
                    for (i = 0, nt = 0; i < cin; i++)
                        for (t = 0; t < k; t++)
                            if ((r + pad - t) % s == 0)
                                wt[nt++] = w[i * k + t];
                    for (m = 0; m < n; m++)
                        acc[m] = l->bias[o];
                    add_taps(acc, rows, wt, nt, n);
                    for (m = 0; m < n; m++)
                        y[o * w_out + m * s + r] = acc[m];
                }
            }
        }
        for (o = 0; o < l->n_out; o++)
            compute_activation(y + o * w_out, w_out, l->activation, l->prelu ? l->prelu[o] : 0.0f);
    }
}

/* The three frames are staged zero-padded (pad bins each side) in scratch. */
void compute_depth_conv(const DzDepthConv *l, const float *oldest, const float *middle,
                        const float *current, int w, float *y, float *scratch)
{
    const int len = w + 2 * l->pad;
    const float *frames[3], *rows[9];
    int c, t, f, m;
    frames[0] = oldest;
    frames[1] = middle;
    frames[2] = current;
    for (t = 0; t < 3; t++)
        for (f = 0; f < 3; f++)
            rows[t * 3 + f] = scratch + t * len + f;
    for (c = 0; c < l->channels; c++) {
        float *yc = y + c * w;
        for (t = 0; t < 3; t++)
            stage_row(scratch + t * len, frames[t] + c * w, w, -l->pad, 1, len);
        for (m = 0; m < w; m++)
            yc[m] = l->bias[c];
        add_taps(yc, rows, l->weight + c * 9, 9, w);
        compute_activation(yc, w, DZ_ACT_PRELU, l->prelu[c]);
    }
}

/* y[0:n_out] += sum_i x[i] w[i][0:n_out] */
static void matvec_add(const float *w, const float *x, int n_in, int n_out, float *restrict y)
{
    int i, o;
    for (i = 0; i < n_in; i++) {
        const float xi = x[i], *restrict wi = w + i * n_out;
        for (o = 0; o < n_out; o++)
            y[o] += xi * wi[o];
    }
}

void compute_dense(const DzDense *l, const float *x, float *y)
{
    memcpy(y, l->bias, (size_t)l->n_out * sizeof(float));
    matvec_add(l->weight, x, l->n_in, l->n_out, y);
    compute_activation(y, l->n_out, l->activation, 0.0f);
}

/* h[0:n] <- GRU update from the gate pre-activations gi, gh (gate-major [3][n]). */
static void gru_gates(const float *gi, const float *gh, float *restrict h, int n)
{
    int k;
    for (k = 0; k < n; k++) {
        const float r = dz_sigmoid(gi[k] + gh[k]);
        const float z = dz_sigmoid(gi[n + k] + gh[n + k]);
        const float c = dz_tanh(gi[2 * n + k] + r * gh[2 * n + k]);
        h[k] = (1.0f - z) * c + z * h[k];
    }
}

/* One step of a GRU on a vector: h[0:n_hidden] <- GRU(x, h). */
void compute_gru(const DzGru *g, const float *x, float *h)
{
    const int n3 = 3 * g->n_hidden;
    float gi[3 * DZ_MAX_UNITS], gh[3 * DZ_MAX_UNITS];
    memcpy(gi, g->b_ih, (size_t)n3 * sizeof(float));
    memcpy(gh, g->b_hh, (size_t)n3 * sizeof(float));
    matvec_add(g->w_ih, x, g->n_in, n3, gi);
    matvec_add(g->w_hh, h, g->n_hidden, n3, gh);
    gru_gates(gi, gh, h, g->n_hidden);
}

/* One GRU step of w independent columns (one per bin): gi and gh hold the input and hidden
   projections (rows [group][gate r, z, n][unit], w columns, biases included), h is
   [n_groups * units][w] (units = n_hidden / n_groups) and is updated. */
void compute_gru_plane(const float *gi, const float *gh, float *h, int n_hidden, int n_groups,
                       int w)
{
    const int units = n_hidden / n_groups;
    int g, u, m;
    for (g = 0; g < n_groups; g++)
        for (u = 0; u < units; u++) {
            const int row = g * 3 * units + u;
            const float *ir = gi + row * w, *iz = ir + units * w, *in = iz + units * w;
            const float *hr = gh + row * w, *hz = hr + units * w, *hn = hz + units * w;
            float *restrict hu = h + (g * units + u) * w;
            for (m = 0; m < w; m++) {
                const float r = dz_sigmoid(ir[m] + hr[m]);
                const float z = dz_sigmoid(iz[m] + hz[m]);
                const float c = dz_tanh(in[m] + r * hn[m]);
                hu[m] = (1.0f - z) * c + z * hu[m];
            }
        }
}

/* GTCRN's grouped bidirectional GRU across the w bins of a frame, from a zero state, as one
   recurrence (denoisezoo.gtcrn.fused): units [group 0 forward, group 0 backward, group 1
   forward, group 1 backward] (n_hidden / 4 each), w_hh block-diagonal. gi: the input
   projections of every bin, rows [group][gate][forward units, backward units] (n_hidden / 2
   per group and gate), biases included. Step s feeds the forward units bin s and the backward
   units bin w - 1 - s; y [n_hidden][w] gets each unit's state at its bin. */
void compute_bigru_plane(const DzGru *g, const float *gi, int w, float *y)
{
    const int n = g->n_hidden, n3 = 3 * n, q = n / 4, half = n / 2;
    float gs[3 * DZ_MAX_UNITS], gh[3 * DZ_MAX_UNITS], h[DZ_MAX_UNITS];
    int s, grp, gate, d, u;
    memset(h, 0, sizeof(h));
    for (s = 0; s < w; s++) {
        for (grp = 0; grp < 2; grp++)
            for (gate = 0; gate < 3; gate++)
                for (d = 0; d < 2; d++) {
                    const float *row = gi + ((grp * 3 + gate) * half + d * q) * w + (d ? w - 1 - s : s);
                    float *dst = gs + gate * n + grp * half + d * q;
                    for (u = 0; u < q; u++)
                        dst[u] = row[u * w];
                }
        memcpy(gh, g->b_hh, (size_t)n3 * sizeof(float));
        matvec_add(g->w_hh, h, n, n3, gh);
        gru_gates(gs, gh, h, n);
        for (grp = 0; grp < 2; grp++)
            for (d = 0; d < 2; d++)
                for (u = 0; u < q; u++)
                    y[(grp * half + d * q + u) * w + (d ? w - 1 - s : s)] = h[grp * half + d * q + u];
    }
}

void compute_layer_norm(const DzLayerNorm *l, float *x)
{
    float mean = 0.0f, var = 0.0f, inv;
    int i;
    for (i = 0; i < l->n; i++)
        mean += x[i];
    mean /= (float)l->n;
    for (i = 0; i < l->n; i++)
        var += (x[i] - mean) * (x[i] - mean);
    var /= (float)l->n;
    inv = 1.0f / sqrtf(var + l->eps);
    for (i = 0; i < l->n; i++)
        x[i] = (x[i] - mean) * inv * l->weight[i] + l->bias[i];
}

void compute_erb_merge(const DzErb *e, const float *x, float *y)
{
    int b, j;
    memcpy(y, x, (size_t)e->low * sizeof(float));
    for (b = 0; b < e->n_bands; b++) {
        const float *xb = x + e->low + e->start[b];
        const float *w = e->weight + e->offset[b];
        float acc = 0.0f;
        for (j = 0; j < e->len[b]; j++)
            acc += w[j] * xb[j];
        y[e->low + b] = acc;
    }
}

void compute_erb_split(const DzErb *e, const float *x, float *y)
{
    int b, j;
    memcpy(y, x, (size_t)e->low * sizeof(float));
    memset(y + e->low, 0, (size_t)e->n_high * sizeof(float));
    for (b = 0; b < e->n_bands; b++) {
        float *yb = y + e->low + e->start[b];
        const float *w = e->weight + e->offset[b];
        const float v = x[e->low + b];
        for (j = 0; j < e->len[b]; j++)
            yb[j] += w[j] * v;
    }
}
