"""Golden tests for every model shipped inside the package: pinned metrics on the bundled example."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import denoisezoo
from denoisezoo.evaluation.metrics import estoi, pesq, si_sdr
from denoisezoo.hub import shipped_models

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# measured once per shipped checkpoint (update when the weights change): PESQ-wb, ESTOI, SI-SDR of
# the enhanced bundled example against its clean reference (noisy input: 1.114, 0.718, 4.98 dB)
PINNED = {"gtcrn": (1.478, 0.736, 9.83), "rnnoise_16k": (1.573, 0.735, 10.47),
          "gtcrn_48k": (1.394, 0.740, 8.37), "gtcrn_dns3_ft": (1.638, 0.767, 10.95),
          "gtcrn_half": (1.347, 0.709, 8.52), "ulunas": (1.737, 0.782, 10.35),
          "rnnoise_48k": (1.619, 0.756, 12.00)}


def test_every_shipped_model_is_pinned_and_self_describing():
    shipped = shipped_models()
    assert set(shipped) == set(PINNED)
    for name in shipped:
        model = denoisezoo.load_model(name)
        meta = model.checkpoint_meta
        for key in ("global_step", "training_data", "metrics", "metrics_noisy", "train_hours"):
            assert key in meta, (name, key)
        assert meta["metrics"]["pesq_wb"] > meta["metrics_noisy"]["pesq_wb"]


@pytest.mark.parametrize("name", sorted(PINNED))
def test_shipped_model_golden_metrics(name):
    model = denoisezoo.load_model(name)
    x, sr = sf.read(EXAMPLES / "noisy_example.wav", dtype="float32")
    clean, _ = sf.read(EXAMPLES / "clean_example.wav", dtype="float32")
    y = denoisezoo.enhance_array(model, x, sr)
    got = (pesq(clean, y, sr), estoi(clean, y, sr), si_sdr(clean, y, sr))
    want = PINNED[name]
    np.testing.assert_allclose(got[:2], want[:2], atol=0.01)
    assert abs(got[2] - want[2]) < 0.05
    # and it does denoise (gtcrn_48k, fed the 16 kHz example resampled, gains the least: +3.4 dB)
    assert got[2] > si_sdr(clean, x, sr) + 2 and got[0] > pesq(clean, x, sr) + 0.15


@pytest.mark.parametrize("name", sorted(PINNED))
def test_shipped_model_keeps_the_sign_of_speech(name):
    """PESQ, STOI and SI-SDR ignore the sign of the output; SNR does not. An inverted estimate
    (GTCRN's complex mask near -1, see GTCRN.invert_polarity_) would score well on the first three
    and far below the noisy input's SNR."""
    model = denoisezoo.load_model(name)
    x, sr = sf.read(EXAMPLES / "noisy_example.wav", dtype="float32")
    clean, _ = sf.read(EXAMPLES / "clean_example.wav", dtype="float32")
    y = denoisezoo.enhance_array(model, x, sr)

    def snr(est):
        return 10 * np.log10(np.sum(clean**2) / np.sum((clean - est) ** 2))

    assert np.corrcoef(y, clean)[0, 1] > 0.8
    assert snr(y) > snr(x) + 2


@pytest.mark.parametrize("name", sorted(PINNED))
def test_shipped_model_card_is_the_docs_card(name, capsys):
    """The card embedded in the weights is docs/models/NAME.md, and `denoisezoo models NAME`
    prints it (re-embed after editing: scripts/ship_model.py WEIGHTS --update-card)."""
    from denoisezoo.cli import main
    from denoisezoo.hub import model_card

    doc = EXAMPLES.parent / "docs" / "models" / f"{name}.md"
    assert doc.is_file(), f"{doc} missing"
    assert model_card(name) == doc.read_text()
    assert main(["models", name]) == 0
    assert capsys.readouterr().out.strip() == doc.read_text().strip()


def test_the_default_is_the_best_shipped_model_of_its_size_class():
    """The default is at least as good, on the dev-set PESQ-wb and on ESTOI recorded in every card,
    as each other shipped model within the zoo's size class (<= hub.DEFAULT_MAX_PARAMS params)."""
    from denoisezoo.hub import DEFAULT_MAX_PARAMS, DEFAULT_MODEL
    from denoisezoo.profile import count_parameters

    models = {name: denoisezoo.load_model(name) for name in shipped_models()}
    best = models[DEFAULT_MODEL].checkpoint_meta["metrics"]
    assert count_parameters(models[DEFAULT_MODEL]) <= DEFAULT_MAX_PARAMS
    for name, model in models.items():
        if count_parameters(model) > DEFAULT_MAX_PARAMS:
            continue
        m = model.checkpoint_meta["metrics"]
        assert m["pesq_wb"] <= best["pesq_wb"] and m["estoi"] <= best["estoi"], (
            f"{name} ({m['pesq_wb']:.3f} / {m['estoi']:.3f}) beats the default {DEFAULT_MODEL} "
            f"({best['pesq_wb']:.3f} / {best['estoi']:.3f}) on the dev set")
