/* A LADSPA plugin around the same streamer (`denoisezoo export ladspa`, `make ladspa`).

   Mono in, mono out, at DZ_SAMPLE_RATE Hz only: instantiate() refuses any other host rate with a
   message on stderr. Control inputs: the attenuation limit in dB (100 = unlimited, 0 = no
   suppression) and the dry/wet mix (1 = denoised only; the dry signal is the input delayed to
   line up). Control output "latency": DZ_N_FFT samples (one hop of buffering for any host
   block size plus the model's DZ_DELAY), the name hosts such as Ardour and PipeWire read.
   Needs <ladspa.h> (Debian: ladspa-sdk). No allocation in run(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ladspa.h>

#include "denoisezoo.h"
#include "dz_config.h"

#define DZ_LATENCY DZ_N_FFT
#define DZ_UNLIMITED_DB 100.0f

enum { PORT_IN, PORT_OUT, PORT_ATTEN, PORT_WET, PORT_LATENCY, N_PORTS };

typedef struct {
    DzModel *model;
    const LADSPA_Data *in, *atten, *wet;
    LADSPA_Data *out, *latency;
    float hop_in[DZ_HOP], hop_out[DZ_HOP];  /* the hop being filled, the hop being emitted */
    int pos;                                 /* samples of the current hop so far */
    float dry[DZ_LATENCY];                   /* the input, DZ_LATENCY samples ago */
    int dry_pos;
    float atten_set;
} DzPlugin;

static LADSPA_Handle instantiate(const LADSPA_Descriptor *d, unsigned long rate)
{
    DzPlugin *p;
    (void)d;
    if (rate != DZ_SAMPLE_RATE) {
        fprintf(stderr, "denoisezoo LADSPA plugin %s: runs at %d Hz only, the host asked for %lu Hz "
                "(resample the stream, or export a model of that rate)\n", DZ_LADSPA_LABEL,
                DZ_SAMPLE_RATE, rate);
        return NULL;
    }
    p = (DzPlugin *)calloc(1, sizeof(DzPlugin));
    if (!p) return NULL;
    p->model = dz_create();
    if (!p->model) {
        free(p);
        return NULL;
    }
    p->atten_set = DZ_UNLIMITED_DB;
    return p;
}

static void connect_port(LADSPA_Handle h, unsigned long port, LADSPA_Data *data)
{
    DzPlugin *p = (DzPlugin *)h;
    switch (port) {
    case PORT_IN: p->in = data; break;
    case PORT_OUT: p->out = data; break;
    case PORT_ATTEN: p->atten = data; break;
    case PORT_WET: p->wet = data; break;
    case PORT_LATENCY: p->latency = data; break;
    default: break;
    }
}

static void activate(LADSPA_Handle h)
{
    DzPlugin *p = (DzPlugin *)h;
    dz_reset(p->model);
    memset(p->hop_out, 0, sizeof(p->hop_out));
    memset(p->dry, 0, sizeof(p->dry));
    p->pos = p->dry_pos = 0;
}

/* The plugin's limit in dB -> dz_set_atten_lim_db's (0 = no limit there). */
static void set_atten(DzPlugin *p, float db)
{
    if (db == p->atten_set) return;
    p->atten_set = db;
    if (!(db < DZ_UNLIMITED_DB)) dz_set_atten_lim_db(p->model, 0.0f);
    else dz_set_atten_lim_db(p->model, db > 1e-6f ? db : 1e-6f);  /* ~0 dB: no suppression */
}

static void run(LADSPA_Handle h, unsigned long n)
{
    DzPlugin *p = (DzPlugin *)h;
    const float wet = p->wet ? (*p->wet < 0.0f ? 0.0f : (*p->wet > 1.0f ? 1.0f : *p->wet)) : 1.0f;
    unsigned long i;
    if (p->atten) set_atten(p, *p->atten);
    if (p->latency) *p->latency = (LADSPA_Data)DZ_LATENCY;
    for (i = 0; i < n; i++) {  /* sample by sample: in and out may be the same buffer */
        const float x = p->in[i], y = p->hop_out[p->pos], dry = p->dry[p->dry_pos];
        p->dry[p->dry_pos] = x;
        p->dry_pos = (p->dry_pos + 1) % DZ_LATENCY;
        p->hop_in[p->pos++] = x;
        p->out[i] = wet >= 1.0f ? y : wet * y + (1.0f - wet) * dry;
        if (p->pos == DZ_HOP) {
            dz_process(p->model, p->hop_in, p->hop_out);
            p->pos = 0;
        }
    }
}

static void cleanup(LADSPA_Handle h)
{
    DzPlugin *p = (DzPlugin *)h;
    dz_destroy(p->model);
    free(p);
}

static const LADSPA_PortDescriptor port_kinds[N_PORTS] = {
    LADSPA_PORT_INPUT | LADSPA_PORT_AUDIO, LADSPA_PORT_OUTPUT | LADSPA_PORT_AUDIO,
    LADSPA_PORT_INPUT | LADSPA_PORT_CONTROL, LADSPA_PORT_INPUT | LADSPA_PORT_CONTROL,
    LADSPA_PORT_OUTPUT | LADSPA_PORT_CONTROL,
};
static const char *const port_names[N_PORTS] = {
    "Input", "Output", "Attenuation limit (dB, 100 = unlimited)", "Dry/wet (1 = denoised)", "latency",
};
static const LADSPA_PortRangeHint port_hints[N_PORTS] = {
    { 0, 0.0f, 0.0f },
    { 0, 0.0f, 0.0f },
    { LADSPA_HINT_BOUNDED_BELOW | LADSPA_HINT_BOUNDED_ABOVE | LADSPA_HINT_DEFAULT_MAXIMUM, 0.0f, DZ_UNLIMITED_DB },
    { LADSPA_HINT_BOUNDED_BELOW | LADSPA_HINT_BOUNDED_ABOVE | LADSPA_HINT_DEFAULT_1, 0.0f, 1.0f },
    { 0, 0.0f, 0.0f },
};

static const LADSPA_Descriptor descriptor = {
    DZ_LADSPA_ID, DZ_LADSPA_LABEL, LADSPA_PROPERTY_HARD_RT_CAPABLE,
    "denoisezoo " DZ_MODEL_NAME " speech denoiser", "denoisezoo", "see the model card",
    N_PORTS, port_kinds, port_names, port_hints, NULL,
    instantiate, connect_port, activate, run, NULL, NULL, NULL, cleanup,
};

__attribute__((visibility("default"))) const LADSPA_Descriptor *ladspa_descriptor(unsigned long index)
{
    return index == 0 ? &descriptor : NULL;
}
