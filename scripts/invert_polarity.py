"""Flip the output sign of a GTCRN checkpoint in place (see ``GTCRN.invert_polarity_``).

    python scripts/invert_polarity.py CHECKPOINT [--note TEXT]

``CHECKPOINT`` is a denoisezoo checkpoint (e.g. ``src/denoisezoo/weights/gtcrn.pt``: the model card
records the flip) or a Lightning checkpoint of our training systems (``runs/.../last.ckpt``: the
student's mask-layer BatchNorm and the AdamW first moments of those parameters are negated, so a
resumed run continues exactly as if it had been trained with the other sign). The file is
rewritten atomically; the enhanced output becomes ``-y``, PESQ / STOI / SI-SDR do not change.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch


def _lightning(ck: dict, path: Path) -> None:
    from denoisezoo.hub import load_model

    model = load_model(path)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    states = ck["optimizer_states"][0]["state"]
    if len(states) != len(trainable):
        raise SystemExit(f"{path}: {len(states)} optimizer states for {len(trainable)} parameters")
    for name in model.output_sign_parameters():
        ck["state_dict"][f"model.{name}"].neg_()
        states[trainable.index(name)]["exp_avg"].neg_()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--note", default="output sign inverted (scripts/invert_polarity.py)")
    args = ap.parse_args(argv)
    path = args.checkpoint
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if "optimizer_states" in ck:
        _lightning(ck, path)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(ck, tmp)
        os.replace(tmp, path)
    else:
        from denoisezoo.hub import load_model, save_checkpoint

        model = load_model(path).invert_polarity_()
        meta = dict(model.checkpoint_meta)
        meta["polarity"] = meta.get("polarity", []) + [args.note]
        save_checkpoint(model, path, name=meta.get("name") or path.stem, meta=meta)  # atomic
    print(f"{path}: output sign inverted")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
