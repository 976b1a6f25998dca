/* dz_demo: denoise a headerless mono file at dz_sample_rate() Hz.

     dz_demo [-s16] [-t] in.raw out.raw

   float32 samples by default, 16-bit signed with -s16 (native byte order). The output has the
   input's length plus the model's delay (DZ_DELAY samples of start-up); the last hop is
   completed with zeros. -t prints the median and 99th-percentile time of one dz_process call. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "denoisezoo.h"
#include "dz_config.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static size_t read_hop(FILE *f, int s16, float *x, int n)
{
    size_t got, i;
    if (!s16) {
        got = fread(x, sizeof(float), (size_t)n, f);
    } else {
        short buf[DZ_HOP];
        got = fread(buf, sizeof(short), (size_t)n, f);
        for (i = 0; i < got; i++)
            x[i] = (float)buf[i] / 32768.0f;
    }
    for (i = got; i < (size_t)n; i++)
        x[i] = 0.0f;
    return got;
}

static int write_hop(FILE *f, int s16, const float *y, int n)
{
    int i;
    if (!s16)
        return fwrite(y, sizeof(float), (size_t)n, f) == (size_t)n;
    {
        short buf[DZ_HOP];
        for (i = 0; i < n; i++) {
            float v = y[i] * 32768.0f;
            buf[i] = (short)(v > 32767.0f ? 32767 : (v < -32768.0f ? -32768 : (int)(v + (v >= 0 ? 0.5f : -0.5f))));
        }
        return fwrite(buf, sizeof(short), (size_t)n, f) == (size_t)n;
    }
}

int main(int argc, char **argv)
{
    const int hop = dz_hop_size();
    int s16 = 0, timing = 0, a = 1;
    long n_in = 0, n_out = 0, target, hops = 0, cap = 0;
    double *times = NULL;
    float x[DZ_HOP], y[DZ_HOP];
    FILE *fi, *fo;
    DzModel *m;

    for (; a < argc && argv[a][0] == '-' && argv[a][1]; a++) {
        if (!strcmp(argv[a], "-s16")) s16 = 1;
        else if (!strcmp(argv[a], "-t")) timing = 1;
        else break;
    }
    if (argc - a != 2) {
        fprintf(stderr, "usage: %s [-s16] [-t] in.raw out.raw  (mono, %d Hz, float32 or -s16 int16)\n",
                argv[0], dz_sample_rate());
        return 2;
    }
    fi = fopen(argv[a], "rb");
    if (!fi) { perror(argv[a]); return 1; }
    fo = fopen(argv[a + 1], "wb");
    if (!fo) { perror(argv[a + 1]); fclose(fi); return 1; }
    m = dz_create();
    if (!m) { fprintf(stderr, "out of memory\n"); return 1; }
    for (;;) {
        size_t got = read_hop(fi, s16, x, hop);
        struct timespec t0, t1;
        if (got == 0 && n_in > 0 && n_out >= n_in + DZ_DELAY) break;
        if (got == 0 && n_in == 0) break;
        n_in += (long)got;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        dz_process(m, x, y);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (timing) {
            if (hops == cap) {
                double *grown;
                cap = cap ? 2 * cap : 1024;
                grown = (double *)realloc(times, (size_t)cap * sizeof(double));
                if (!grown) { free(times); return 1; }
                times = grown;
            }
            times[hops] = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6;
        }
        hops++;
        target = n_in + DZ_DELAY - n_out;
        if (!write_hop(fo, s16, y, target < hop ? (int)target : hop)) { perror(argv[a + 1]); return 1; }
        n_out += target < hop ? target : hop;
    }
    if (timing && hops > 0) {
        qsort(times, (size_t)hops, sizeof(double), cmp_double);
        fprintf(stderr, "%ld hops: median %.4f ms, p99 %.4f ms per %d-sample hop\n", hops,
                times[hops / 2], times[(long)(0.99 * (double)(hops - 1))], hop);
    }
    free(times);
    dz_destroy(m);
    fclose(fi);
    if (fclose(fo)) { perror(argv[a + 1]); return 1; }
    return 0;
}
