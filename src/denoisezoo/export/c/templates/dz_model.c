/* The whole streaming denoiser of one stream: STFT analysis, the GTCRN network (dz_net.h) with
   its caches, the complex ratio mask, the attenuation limit and the overlap-add synthesis, as
   denoisezoo.streaming.Streamer runs them in Python. One DzModel holds every buffer; the only
   allocation is the one in dz_create. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "denoisezoo.h"
#include "dz_fft.h"
#include "dz_net.h"
#include "dz_spectral.h"

#define DZ_HALF (DZ_CHANNELS / 2)
#define DZ_N_GT (2 * DZ_N_DIL)
#define DZ_PLANE (DZ_CHANNELS * DZ_WIDTH)
#define DZ_RAMP_FRAMES 4          /* Streamer.strength_ramp_frames */
#define DZ_INPUT_LIMIT 32.0f      /* input samples are clipped to +-DZ_INPUT_LIMIT */
#define DZ_MAX(a, b) ((a) > (b) ? (a) : (b))
#define DZ_WORK DZ_MAX(DZ_MAX(DZ_CHANNELS * DZ_W0, 2 * DZ_FEAT_BINS), DZ_MAX_HIDDEN * DZ_WIDTH)
/* Working memory of the layer functions (dz_layers.c): a conv's staged input (at most
   n_in s (w_out + kernel + 2) floats, plus one output phase), a depthwise conv's three padded
   frames. */
#define DZ_CONV_SCRATCH(n_in, s, w_out, k) ((n_in) * (s) * ((w_out) + (k) + 2) + (w_out))
#define DZ_SCRATCH_CONV DZ_MAX(DZ_MAX(DZ_CONV_SCRATCH(3 * DZ_SFE_KERNEL, DZ_STEM_STRIDE, DZ_W0, DZ_STEM_KERNEL), \
                                      DZ_CONV_SCRATCH(DZ_CHANNELS, DZ_STEM_STRIDE, DZ_FEAT_BINS, DZ_STEM_KERNEL)), \
                               DZ_CONV_SCRATCH(DZ_MAX(DZ_HALF, DZ_MAX_HIDDEN), 1, DZ_WIDTH, DZ_SFE_KERNEL))
#define DZ_SCRATCH DZ_MAX(DZ_SCRATCH_CONV, 3 * (DZ_WIDTH + 2))

struct DzModel {
    /* STFT */
    DzFft fft;
    float window[DZ_N_FFT];
    float history[DZ_DELAY];       /* the last DZ_N_FFT - DZ_HOP input samples */
    float ola[DZ_DELAY];           /* overlap-add tail */
    float frame[DZ_N_FFT];
    float spec[2 * DZ_N_FREQS];    /* noisy spectrum, (re, im) pairs */
    float enh[2 * DZ_N_FREQS];     /* enhanced spectrum */
    /* network state */
    float cache[DZ_CACHE_FLOATS];  /* per GT block, ring of its last 2 dilation depthwise inputs */
    int cache_pos[DZ_N_GT];        /* ring slot of each block's oldest frame */
    float tra_h[DZ_N_GT][DZ_MAX_UNITS];
    float inter_h[DZ_N_DP][DZ_MAX_INTER * DZ_WIDTH];  /* [unit][bin] */
    /* per-frame buffers */
    float feat[3][DZ_N_FREQS];     /* |X|, Re X, Im X */
    float erb[3][DZ_FEAT_BINS];
    float sfe[3 * DZ_SFE_KERNEL][DZ_FEAT_BINS];
    float skip0[DZ_CHANNELS * DZ_W0];
    float skips[1 + DZ_N_DIL][DZ_PLANE];
    float x[DZ_WORK], y[DZ_WORK];
    float h1[DZ_MAX_HIDDEN * DZ_WIDTH], h2[DZ_MAX_HIDDEN * DZ_WIDTH], p2[DZ_HALF * DZ_WIDTH];
    float gi[3 * DZ_MAX_UNITS * DZ_WIDTH], gh[3 * DZ_MAX_UNITS * DZ_WIDTH];
    float rnn[DZ_MAX_UNITS * DZ_WIDTH], fc[DZ_PLANE];
    float mask[2][DZ_N_FREQS];
    float scratch[DZ_SCRATCH];
    float out_frame[DZ_N_FFT];
    /* strength control: gain floor ramping from floor_start to floor_target */
    double floor_start, floor_target;
    int floor_pos;
    long frames;
    int bad;                       /* a non-finite value entered a cache during this hop */
};

int dz_sample_rate(void) { return DZ_SAMPLE_RATE; }
int dz_hop_size(void) { return DZ_HOP; }
int dz_fft_size(void) { return DZ_N_FFT; }
int dz_n_freqs(void) { return DZ_N_FREQS; }

static void reset_network(DzModel *m)
{
    memset(m->cache, 0, sizeof(m->cache));
    memset(m->cache_pos, 0, sizeof(m->cache_pos));
    memset(m->tra_h, 0, sizeof(m->tra_h));
    memset(m->inter_h, 0, sizeof(m->inter_h));
}

void dz_reset(DzModel *m)
{
    memset(m->history, 0, sizeof(m->history));
    memset(m->ola, 0, sizeof(m->ola));
    reset_network(m);
    m->floor_start = m->floor_target;  /* a new stream starts at the requested strength */
    m->floor_pos = 0;
    m->frames = 0;
}

DzModel *dz_create(void)
{
    DzModel *m = (DzModel *)calloc(1, sizeof(DzModel));
    int n;
    if (!m) return NULL;
    dz_fft_init(&m->fft);
    for (n = 0; n < DZ_N_FFT; n++)  /* periodic sqrt-Hann */
        m->window[n] = (float)sqrt(0.5 - 0.5 * cos(6.28318530717958647692 * n / DZ_N_FFT));
    dz_reset(m);
    return m;
}

void dz_destroy(DzModel *m)
{
    free(m);
}

void dz_set_atten_lim_db(DzModel *m, float db)
{
    double target = (db > 0.0f && isfinite(db)) ? pow(10.0, -(double)db / 20.0) : 0.0;
    double a = m->floor_pos >= DZ_RAMP_FRAMES ? 1.0 : (double)m->floor_pos / DZ_RAMP_FRAMES;
    double current = m->floor_start + (m->floor_target - m->floor_start) * a;
    m->floor_start = m->frames > 0 ? current : target;
    m->floor_target = target;
    m->floor_pos = 0;
}

/* ------------------------------------------------------------------------------- network */
static int all_finite(const float *x, int n)
{
    int i, ok = 1;
    for (i = 0; i < n; i++)
        ok &= isfinite(x[i]) ? 1 : 0;
    return ok;
}

/* Stack sfe_kernel neighbouring bins of each channel: [c][bins] -> [c * k + j][bins]. */
static void compute_sfe(const float *x, int channels, int w, float *y)
{
    const int k = DZ_SFE_KERNEL, half = DZ_SFE_KERNEL / 2;
    int c, j, f;
    for (c = 0; c < channels; c++)
        for (j = 0; j < k; j++) {
            float *yc = y + (c * k + j) * w;
            const float *xc = x + c * w;
            for (f = 0; f < w; f++) {
                int src = f + j - half;
                yc[f] = (src >= 0 && src < w) ? xc[src] : 0.0f;
            }
        }
}

static void add(float *x, const float *y, int n)
{
    int i;
    for (i = 0; i < n; i++)
        x[i] += y[i];
}

/* One grouped dual-path GRU block, in place on x [C][W]. */
static void dp_block(DzModel *m, int k, float *x)
{
    const DzDpBlock *l = &dz_network.dp[k];
    float *h = m->inter_h[k];

    /* across the bins of this frame: both groups, both directions */
    compute_conv(&l->intra_in, x, DZ_WIDTH, m->gi, DZ_WIDTH, m->scratch);
    compute_bigru_plane(&l->intra, m->gi, DZ_WIDTH, m->rnn);
    compute_conv(&l->intra_fc, m->rnn, DZ_WIDTH, m->fc, DZ_WIDTH, m->scratch);
    compute_layer_norm(&l->intra_ln, m->fc);
    add(x, m->fc, DZ_PLANE);
    /* across time: one step of every bin's state */
    compute_conv(&l->inter_in, x, DZ_WIDTH, m->gi, DZ_WIDTH, m->scratch);
    compute_conv(&l->inter_hh, h, DZ_WIDTH, m->gh, DZ_WIDTH, m->scratch);
    compute_gru_plane(m->gi, m->gh, h, l->inter_fc.n_in, 2, DZ_WIDTH);
    compute_conv(&l->inter_fc, h, DZ_WIDTH, m->fc, DZ_WIDTH, m->scratch);
    compute_layer_norm(&l->inter_ln, m->fc);
    add(x, m->fc, DZ_PLANE);
}

/* One grouped temporal conv block: in [C][W] -> out [C][W] (may not alias). */
static void gt_block(DzModel *m, int b, const float *in, float *out)
{
    const DzGtBlock *l = &dz_network.gt[b];
    const int hidden = l->point1.n_out, d = l->depth.dilation, ring = 2 * d;
    const int slot = DZ_WIDTH * hidden;
    float *cache = m->cache + l->cache_offset;
    float zt[DZ_HALF], gate[DZ_HALF], *p2 = m->p2;
    const float *oldest, *middle;
    int pos = m->cache_pos[b], c, f;

    compute_conv(&l->point1, in, DZ_WIDTH, m->h1, DZ_WIDTH, m->scratch);  /* first half of the channels */
    oldest = cache + pos * slot;
    middle = cache + ((pos + d) % ring) * slot;
    compute_depth_conv(&l->depth, oldest, middle, m->h1, DZ_WIDTH, m->h2, m->scratch);
    memcpy(cache + pos * slot, m->h1, (size_t)slot * sizeof(float));  /* newest replaces oldest */
    m->bad |= !all_finite(m->h1, slot);
    m->cache_pos[b] = (pos + 1) % ring;
    compute_conv(&l->point2, m->h2, DZ_WIDTH, p2, DZ_WIDTH, m->scratch);
    for (c = 0; c < DZ_HALF; c++) {  /* TRA: mean power of each channel drives a GRU */
        const float *pc = p2 + c * DZ_WIDTH;
        float acc = 0.0f;
        for (f = 0; f < DZ_WIDTH; f++)
            acc += pc[f] * pc[f];
        zt[c] = acc / DZ_WIDTH;
    }
    compute_gru(&l->tra_gru, zt, m->tra_h[b]);
    compute_dense(&l->tra_fc, m->tra_h[b], gate);
    for (c = 0; c < DZ_HALF; c++) {  /* interleave: processed half, untouched half */
        float *o1 = out + 2 * c * DZ_WIDTH, *o2 = o1 + DZ_WIDTH;
        const float *pc = p2 + c * DZ_WIDTH, *xc = in + (DZ_HALF + c) * DZ_WIDTH;
        for (f = 0; f < DZ_WIDTH; f++) {
            o1[f] = pc[f] * gate[c];
            o2[f] = xc[f];
        }
    }
}

/* m->spec -> m->enh through the network (GTCRN._run for one frame). */
static void run_network(DzModel *m)
{
    const DzNetwork *net = &dz_network;
    float *cur = m->x, *nxt = m->y, *t;
    int f, b, k;

    m->bad = 0;
    for (f = 0; f < DZ_N_FREQS; f++) {
        float re = m->spec[2 * f], im = m->spec[2 * f + 1];
        m->feat[0][f] = sqrtf(re * re + im * im + 1e-12f);
        m->feat[1][f] = re;
        m->feat[2][f] = im;
    }
    for (k = 0; k < 3; k++)
        compute_erb_merge(&net->erb, m->feat[k], m->erb[k]);
    compute_sfe(m->erb[0], 3, DZ_FEAT_BINS, m->sfe[0]);

    compute_conv(&net->enc[0], m->sfe[0], DZ_FEAT_BINS, m->skip0, DZ_W0, m->scratch);
    compute_conv(&net->enc[1], m->skip0, DZ_W0, m->skips[0], DZ_WIDTH, m->scratch);
    for (b = 0; b < DZ_N_DIL; b++)
        gt_block(m, b, m->skips[b], m->skips[b + 1]);
    memcpy(cur, m->skips[DZ_N_DIL], sizeof(m->skips[0]));
    for (k = 0; k < DZ_N_DP; k++)
        dp_block(m, k, cur);
    for (b = 0; b < DZ_N_DIL; b++) {
        add(cur, m->skips[DZ_N_DIL - b], DZ_PLANE);
        gt_block(m, DZ_N_DIL + b, cur, nxt);
        t = cur;
        cur = nxt;
        nxt = t;
    }
    add(cur, m->skips[0], DZ_PLANE);
    compute_conv(&net->dec[0], cur, DZ_WIDTH, nxt, DZ_W0, m->scratch);
    add(nxt, m->skip0, DZ_CHANNELS * DZ_W0);
    compute_conv(&net->dec[1], nxt, DZ_W0, cur, DZ_FEAT_BINS, m->scratch);  /* mask [2][DZ_FEAT_BINS] */
    compute_erb_split(&net->erb, cur, m->mask[0]);
    compute_erb_split(&net->erb, cur + DZ_FEAT_BINS, m->mask[1]);

    for (f = 0; f < DZ_N_FREQS; f++) {  /* complex ratio mask */
        float sr = m->spec[2 * f], si = m->spec[2 * f + 1];
        float mr = m->mask[0][f], mi = m->mask[1][f];
        m->enh[2 * f] = sr * mr - si * mi;
        m->enh[2 * f + 1] = si * mr + sr * mi;
    }
}

/* Speech presence from the power the mask kept in the speech band (dsp/vad.py). */
static float speech_presence(const DzModel *m)
{
    double p_in = 0.0, p_out = 0.0;
    float p, snr_db;
    int f;
    for (f = DZ_VAD_LO; f < DZ_VAD_HI; f++) {
        p_in += (double)m->spec[2 * f] * m->spec[2 * f] + (double)m->spec[2 * f + 1] * m->spec[2 * f + 1];
        p_out += (double)m->enh[2 * f] * m->enh[2 * f] + (double)m->enh[2 * f + 1] * m->enh[2 * f + 1];
    }
    p = (float)(p_out / (p_in + 1e-10));
    p = p < 1e-7f ? 1e-7f : (p > 1.0f - 1e-7f ? 1.0f - 1e-7f : p);
    snr_db = 10.0f * log10f(p / (1.0f - p));
    return 1.0f / (1.0f + expf(-(snr_db - DZ_VAD_CENTRE_DB) / DZ_VAD_SCALE_DB));
}

/* The attenuation limit on m->enh (dsp/strength.py apply_strength, wet = 1). */
static void apply_floor(DzModel *m)
{
    double a = (double)(m->floor_pos + 1) / DZ_RAMP_FRAMES;
    float fl = (float)(m->floor_start + (m->floor_target - m->floor_start) * (a < 1.0 ? a : 1.0));
    int f;
    m->floor_pos++;
    if (fl <= 0.0f) return;
    if (fl > 1.0f) fl = 1.0f;
    for (f = 0; f < DZ_N_FREQS; f++) {
        float xr = m->spec[2 * f], xi = m->spec[2 * f + 1];
        float yr = m->enh[2 * f], yi = m->enh[2 * f + 1];
        float mag_out = sqrtf(yr * yr + yi * yi), need = fl * sqrtf(xr * xr + xi * xi);
        if (fl >= 1.0f) {
            m->enh[2 * f] = xr;
            m->enh[2 * f + 1] = xi;
        } else if (mag_out < need) {
            if (mag_out > 0.0f) {
                float g = need / (mag_out > 1e-30f ? mag_out : 1e-30f);
                m->enh[2 * f] = yr * g;
                m->enh[2 * f + 1] = yi * g;
            } else {
                m->enh[2 * f] = fl * xr;
                m->enh[2 * f + 1] = fl * xi;
            }
        }
    }
}

static int state_finite(const DzModel *m)
{
    return !m->bad && all_finite(m->enh, 2 * DZ_N_FREQS) && all_finite(m->tra_h[0], DZ_N_GT * DZ_MAX_UNITS)
           && all_finite(m->inter_h[0], DZ_N_DP * DZ_WIDTH * DZ_MAX_INTER);
}

float dz_process_spectrum(DzModel *m, const float *spec_in, float *spec_out)
{
    float prob;
    memcpy(m->spec, spec_in, sizeof(m->spec));
    run_network(m);
    prob = speech_presence(m);
    if (!state_finite(m) || !isfinite(prob)) {
        reset_network(m);
        memset(m->enh, 0, sizeof(m->enh));
        prob = 0.0f;
    }
    memcpy(spec_out, m->enh, sizeof(m->enh));
    return prob;
}

float dz_process(DzModel *m, const float *in, float *out)
{
    float prob;
    int n;

    memcpy(m->frame, m->history, sizeof(m->history));
    for (n = 0; n < DZ_HOP; n++) {  /* NaN / inf -> 0, clipped to +-DZ_INPUT_LIMIT */
        float v = isfinite(in[n]) ? in[n] : 0.0f;
        m->frame[DZ_DELAY + n] = v > DZ_INPUT_LIMIT ? DZ_INPUT_LIMIT : (v < -DZ_INPUT_LIMIT ? -DZ_INPUT_LIMIT : v);
    }
    memcpy(m->history, m->frame + DZ_HOP, sizeof(m->history));
    for (n = 0; n < DZ_N_FFT; n++)
        m->frame[n] *= m->window[n];
    dz_rfft(&m->fft, m->frame, m->spec);

    run_network(m);
    prob = speech_presence(m);
    apply_floor(m);
    if (!state_finite(m) || !isfinite(prob)) {  /* never let a bad hop poison the next ones */
        reset_network(m);
        memset(m->enh, 0, sizeof(m->enh));
        prob = 0.0f;
    }

    dz_irfft(&m->fft, m->enh, m->out_frame);
    for (n = 0; n < DZ_N_FFT; n++)
        m->out_frame[n] *= m->window[n];
    for (n = 0; n < DZ_HOP; n++)
        out[n] = (n < DZ_DELAY ? m->ola[n] : 0.0f) + m->out_frame[n];
    for (n = 0; n < DZ_DELAY; n++)
        m->ola[n] = (DZ_HOP + n < DZ_DELAY ? m->ola[DZ_HOP + n] : 0.0f) + m->out_frame[DZ_HOP + n];
    m->frames++;
    return prob;
}

void dz_bypass(DzModel *m, const float *in, float *out)
{
    int n;
    memcpy(m->frame, m->history, sizeof(m->history));
    for (n = 0; n < DZ_HOP; n++) {  /* as dz_process */
        float v = isfinite(in[n]) ? in[n] : 0.0f;
        m->frame[DZ_DELAY + n] = v > DZ_INPUT_LIMIT ? DZ_INPUT_LIMIT : (v < -DZ_INPUT_LIMIT ? -DZ_INPUT_LIMIT : v);
    }
    memcpy(m->history, m->frame + DZ_HOP, sizeof(m->history));
    /* enhanced = noisy spectrum: irfft(rfft(frame w)) w = frame w^2, no FFT needed */
    for (n = 0; n < DZ_N_FFT; n++)
        m->out_frame[n] = m->frame[n] * m->window[n] * m->window[n];
    for (n = 0; n < DZ_HOP; n++)
        out[n] = (n < DZ_DELAY ? m->ola[n] : 0.0f) + m->out_frame[n];
    for (n = 0; n < DZ_DELAY; n++)
        m->ola[n] = (DZ_HOP + n < DZ_DELAY ? m->ola[DZ_HOP + n] : 0.0f) + m->out_frame[DZ_HOP + n];
    m->floor_pos++;  /* the attenuation-limit ramp goes on, as in the Python pool */
    m->frames++;
}

int dz_process_many(DzModel *const *models, int n, const float *in, float *out, float *vad)
{
    int i;
    if (n < 0 || (n > 0 && (!models || !in || !out))) return -1;
    for (i = 0; i < n; i++)
        if (!models[i]) return -1;
    for (i = 0; i < n; i++) {
        float p = dz_process(models[i], in + (size_t)i * DZ_HOP, out + (size_t)i * DZ_HOP);
        if (vad) vad[i] = p;
    }
    return 0;
}

int dz_bypass_many(DzModel *const *models, int n, const float *in, float *out)
{
    int i;
    if (n < 0 || (n > 0 && (!models || !in || !out))) return -1;
    for (i = 0; i < n; i++)
        if (!models[i]) return -1;
    for (i = 0; i < n; i++)
        dz_bypass(models[i], in + (size_t)i * DZ_HOP, out + (size_t)i * DZ_HOP);
    return 0;
}
