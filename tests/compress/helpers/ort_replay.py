"""Run exported ONNX step models frame by frame with onnxruntime + numpy only (no torch), so that the
same run can be repeated under an emulated CPU (qemu-user) and compared bit for bit.

Usage: python ort_replay.py IN.npz OUT.npz MODEL.onnx...
IN.npz holds ``frames`` (T, *frame shape); zero initial states; OUT.npz gets one (T, *out shape)
array per model, keyed by the model's file stem.
"""

import sys

import numpy as np
import onnxruntime as ort


def replay(path: str, frames: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()][1:]
    state = [np.zeros(i.shape, np.float32) for i in sess.get_inputs()[1:]]
    outs = []
    for frame in frames:
        res = sess.run(None, {"frame": frame, **dict(zip(names, state, strict=True))})
        outs.append(res[0])
        state = res[1:]
    return np.stack(outs)


if __name__ == "__main__":
    frames = np.load(sys.argv[1])["frames"]
    np.savez(sys.argv[2], **{p.rsplit("/", 1)[-1][: -len(".onnx")]: replay(p, frames)
                             for p in sys.argv[3:]})
