"""Rebuild the bundled example (examples/noisy_example.wav, examples/clean_example.wav).

Speech: LibriSpeech 198-209-0000 (CC-BY-4.0, read by Heather Barnett), first 6 s.
Noise: freesound 573577 (CC0-1.0, via DeepFilterNet's assets) looped, plus synthetic pink noise
generated here, mixed at 5 dB SNR. Reads from ../shared (see ../shared/README.md).

    python scripts/make_example.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    return x / np.sqrt(np.mean(x**2))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "examples"))
    args = ap.parse_args(argv)
    shared = Path(args.shared)
    speech, sr = sf.read(shared / "data/speech/ext/librispeech/198-209-0000.flac", dtype="float64")
    noise, sr2 = sf.read(shared / "data/noise/dev/dfn_noise_freesound_573577.flac", dtype="float64")
    assert sr == sr2 == 16000
    n = 6 * sr
    clean = speech[:n]
    noise = np.tile(noise, int(np.ceil(n / noise.size)))[:n]
    noise = noise / np.sqrt(np.mean(noise**2)) + 0.5 * pink(n, np.random.default_rng(0))
    snr_db = 5.0
    p_s = np.mean(clean**2)
    noise *= np.sqrt(p_s / (np.mean(noise**2) * 10 ** (snr_db / 10)))
    noisy = clean + noise
    peak = np.max(np.abs(noisy))
    gain = 0.5 / peak
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sf.write(out / "noisy_example.wav", noisy * gain, sr, subtype="PCM_16")
    sf.write(out / "clean_example.wav", clean * gain, sr, subtype="PCM_16")
    print(f"wrote {out}/noisy_example.wav and clean_example.wav ({n / sr:.1f} s, SNR {snr_db} dB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
