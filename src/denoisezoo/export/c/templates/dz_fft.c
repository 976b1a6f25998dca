/* Mixed-radix real FFT (see dz_fft.h). Twiddles are computed once by dz_fft_init in double
   precision; the transforms themselves only read them. */
#include <math.h>
#include <string.h>

#include "dz_fft.h"

#define DZ_TWO_PI 6.28318530717958647692

static int next_factor(int n)
{
    int p;
    if (n % 4 == 0) return 4;
    if (n % 2 == 0) return 2;
    for (p = 3; p * p <= n; p += 2)
        if (n % p == 0) return p;
    return n;
}

void dz_fft_init(DzFft *f)
{
    int n = DZ_FFT_NC, s = 0, tw = 0, ro = 0, j, k;
    memset(f, 0, sizeof(*f));
    while (n > 1 && s < DZ_FFT_MAX_STAGES) {
        int p = next_factor(n), m = n / p;
        f->radix[s++] = p;
        for (j = 0; j < m; j++)
            for (k = 1; k < p; k++) {
                double a = -DZ_TWO_PI * (double)j * k / n;
                f->twiddle[tw++] = (float)cos(a);
                f->twiddle[tw++] = (float)sin(a);
            }
        for (k = 0; k < p; k++) {
            double a = -DZ_TWO_PI * (double)k / p;
            f->roots[ro++] = (float)cos(a);
            f->roots[ro++] = (float)sin(a);
        }
        n = m;
    }
    f->n_stages = s;
    for (k = 0; k <= DZ_FFT_NC; k++) {
        double a = -DZ_TWO_PI * (double)k / DZ_N_FFT;
        f->post[2 * k] = (float)cos(a);
        f->post[2 * k + 1] = (float)sin(a);
    }
}

/* One radix-p Stockham stage: x holds l = n / p groups of stride s; y gets them reordered. */
static void stage(int n, int s, int p, const float *tw, const float *roots, const float *x, float *y)
{
    int m = n / p, j, q, r, k;
    for (j = 0; j < m; j++) {
        const float *w = tw + 2 * (p - 1) * j;
        for (q = 0; q < s; q++) {
            const float *a = x + 2 * (q + s * j);
            float *b = y + 2 * (q + s * p * j);
            int st = 2 * s * m, ot = 2 * s;  /* input step between r, output step between k */
            if (p == 2) {
                float ar = a[0], ai = a[1], br = a[st], bi = a[st + 1];
                float dr = ar - br, di = ai - bi;
                b[0] = ar + br;
                b[1] = ai + bi;
                b[ot] = dr * w[0] - di * w[1];
                b[ot + 1] = dr * w[1] + di * w[0];
            } else if (p == 4) {
                float a0r = a[0], a0i = a[1], a1r = a[st], a1i = a[st + 1];
                float a2r = a[2 * st], a2i = a[2 * st + 1], a3r = a[3 * st], a3i = a[3 * st + 1];
                float s02r = a0r + a2r, s02i = a0i + a2i, d02r = a0r - a2r, d02i = a0i - a2i;
                float s13r = a1r + a3r, s13i = a1i + a3i, d13r = a1r - a3r, d13i = a1i - a3i;
                float y1r = d02r + d13i, y1i = d02i - d13r;   /* d02 - i d13 */
                float y2r = s02r - s13r, y2i = s02i - s13i;
                float y3r = d02r - d13i, y3i = d02i + d13r;   /* d02 + i d13 */
                b[0] = s02r + s13r;
                b[1] = s02i + s13i;
                b[ot] = y1r * w[0] - y1i * w[1];
                b[ot + 1] = y1r * w[1] + y1i * w[0];
                b[2 * ot] = y2r * w[2] - y2i * w[3];
                b[2 * ot + 1] = y2r * w[3] + y2i * w[2];
                b[3 * ot] = y3r * w[4] - y3i * w[5];
                b[3 * ot + 1] = y3r * w[5] + y3i * w[4];
            } else if (p == 3) {
                const float c = -0.5f, sn = -0.86602540378443864676f;  /* exp(-2 pi i / 3) */
                float a0r = a[0], a0i = a[1], a1r = a[st], a1i = a[st + 1];
                float a2r = a[2 * st], a2i = a[2 * st + 1];
                float sr = a1r + a2r, si = a1i + a2i, dr = a1r - a2r, di = a1i - a2i;
                float mr = a0r + c * sr, mi = a0i + c * si;
                float y1r = mr - sn * di, y1i = mi + sn * dr;
                float y2r = mr + sn * di, y2i = mi - sn * dr;
                b[0] = a0r + sr;
                b[1] = a0i + si;
                b[ot] = y1r * w[0] - y1i * w[1];
                b[ot + 1] = y1r * w[1] + y1i * w[0];
                b[2 * ot] = y2r * w[2] - y2i * w[3];
                b[2 * ot + 1] = y2r * w[3] + y2i * w[2];
            } else {  /* any radix: a plain DFT of the p inputs */
                for (k = 0; k < p; k++) {
                    float vr = 0.0f, vi = 0.0f;
                    for (r = 0; r < p; r++) {
                        const float *e = roots + 2 * ((r * k) % p);
                        float xr = a[r * st], xi = a[r * st + 1];
                        vr += xr * e[0] - xi * e[1];
                        vi += xr * e[1] + xi * e[0];
                    }
                    if (k == 0) {
                        b[0] = vr;
                        b[1] = vi;
                    } else {
                        const float *t = w + 2 * (k - 1);
                        b[k * ot] = vr * t[0] - vi * t[1];
                        b[k * ot + 1] = vr * t[1] + vi * t[0];
                    }
                }
            }
        }
    }
}

/* Complex forward FFT of DZ_FFT_NC points; returns the buffer holding the result. */
static float *cfft(DzFft *f, const float *in)
{
    const float *tw = f->twiddle, *ro = f->roots;
    float *x = f->work[0], *y = f->work[1], *t;
    int n = DZ_FFT_NC, s = 1, i;
    memcpy(x, in, sizeof(f->work[0]));
    for (i = 0; i < f->n_stages; i++) {
        int p = f->radix[i];
        stage(n, s, p, tw, ro, x, y);
        tw += 2 * (p - 1) * (n / p);
        ro += 2 * p;
        t = x;
        x = y;
        y = t;
        n /= p;
        s *= p;
    }
    return x;
}

void dz_rfft(DzFft *f, const float *x, float *X)
{
    const int nc = DZ_FFT_NC;
    const float *z = cfft(f, x);  /* z[n] = x[2n] + i x[2n + 1] */
    int k;
    for (k = 0; k <= nc; k++) {
        int a = k % nc, b = (nc - k) % nc;
        float zr = z[2 * a], zi = z[2 * a + 1], cr = z[2 * b], ci = -z[2 * b + 1];
        float er = 0.5f * (zr + cr), ei = 0.5f * (zi + ci);
        float orr = 0.5f * (zi - ci), oi = -0.5f * (zr - cr);  /* (z - conj) / (2 i) */
        float wr = f->post[2 * k], wi = f->post[2 * k + 1];
        X[2 * k] = er + wr * orr - wi * oi;
        X[2 * k + 1] = ei + wr * oi + wi * orr;
    }
}

void dz_irfft(DzFft *f, const float *X, float *x)
{
    const int nc = DZ_FFT_NC;
    float *Z = x;  /* x has room for 2 nc floats: build the half-size spectrum there */
    const float *z;
    const float scale = 1.0f / DZ_N_FFT;
    int k;
    for (k = 0; k < nc; k++) {
        int b = nc - k;
        float xr = X[2 * k], xi = (k == 0) ? 0.0f : X[2 * k + 1];
        float cr = X[2 * b], ci = (b == nc) ? 0.0f : -X[2 * b + 1];
        float er = xr + cr, ei = xi + ci;
        float dr = xr - cr, di = xi - ci;
        float wr = f->post[2 * k], wi = -f->post[2 * k + 1];   /* exp(+2 pi i k / N) */
        float orr = dr * wr - di * wi, oi = dr * wi + di * wr;
        /* Z = E + i O, conjugated for the inverse via the forward transform */
        Z[2 * k] = er - oi;
        Z[2 * k + 1] = -(ei + orr);
    }
    z = cfft(f, Z);
    for (k = 0; k < nc; k++) {
        x[2 * k] = z[2 * k] * scale;
        x[2 * k + 1] = -z[2 * k + 1] * scale;
    }
}
