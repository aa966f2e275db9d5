"""Models built to sit on the decision boundary of a validation function (tests only).

Each one is an honest-looking model file whose score, computed with library float kernels,
depends on the order in which a BLAS sums, the batch size or the FTZ/DAZ flags; the exact
path must score each the same everywhere.
"""

from __future__ import annotations

import numpy as np

from pot.ml import Dataset, build_model, make_dataset, model_config_for
from pot.ml.modelfile import decode, encode

DIGITS_FLAT = model_config_for("digits-flat", "mlp")


def digits_flat() -> tuple[Dataset, bytes]:
    train_b, test_b = make_dataset("digits-flat", seed=0)
    return Dataset.from_bytes(train_b), test_b


def cancelling_mlp(train: Dataset, scale: float = 1e-8) -> bytes:
    """Hidden units carry ±1e8 (from input pixels) that cancel in the output layer; what is left,
    a least-squares linear classifier times ``scale``, is about the size of one rounding of 1e8."""
    x = np.c_[train.x.reshape(len(train.x), -1), np.ones(len(train.x))]
    w_lin, *_ = np.linalg.lstsq(x, np.eye(10)[train.y], rcond=None)
    k = 10
    w1 = np.zeros((k + 1, 64))
    w1[:k] = w_lin[:64].T * scale
    for i, p in enumerate([20, 28, 36, 43, 27, 35]):  # central pixels, mostly lit
        w1[:, p] += 1e8 if i % 2 == 0 else -0.75e8
    w2 = np.zeros((10, k + 1))
    w2[np.arange(10), np.arange(10)] = 1.0
    w2[:, k] = -1.0
    cfg = {**DIGITS_FLAT, "hidden": [k + 1]}
    return encode({"net.1.weight": w1, "net.1.bias": np.full(k + 1, 1e8), "net.3.weight": w2,
                   "net.3.bias": np.zeros(10)}, cfg)


def tied_logits_mlp() -> bytes:
    """Logits 0 and 1 are the same sum of the same 32 hidden values (pixels times 10**(j % 9)),
    added in opposite orders: equal in exact arithmetic, decided by rounding otherwise."""
    k = 32
    w1 = np.zeros((2 * k, 64))
    for j in range(k):
        w1[j, 16 + j] = w1[2 * k - 1 - j, 16 + j] = 10.0 ** (j % 9) * (1 + j / 7)
    w2 = np.zeros((10, 2 * k))
    w2[0, :k] = 1.0
    w2[1, k:] = 1.0
    w2[2:, 0] = 0.5  # other classes a little below
    cfg = {**DIGITS_FLAT, "hidden": [2 * k]}
    return encode({"net.1.weight": w1, "net.1.bias": np.zeros(2 * k), "net.3.weight": w2,
                   "net.3.bias": np.zeros(10)}, cfg)


def denormal_mlp() -> bytes:
    """Eight layers that scale by 1e-38 then eight that scale by 1e38: float64 intermediates
    pass through the denormal range (below 2**-1022), where FTZ/DAZ flags decide the result."""
    hidden = [4] * 16
    cfg = {**DIGITS_FLAT, "hidden": hidden}
    state: dict[str, np.ndarray] = {}
    width, idx = 64, 1
    rng = np.random.default_rng(5)
    for i, h in enumerate(hidden):
        s = 1e-38 if i < 8 else 1e38
        state[f"net.{idx}.weight"] = np.abs(rng.normal(size=(h, width))) * s
        state[f"net.{idx}.bias"] = np.zeros(h)
        width, idx = h, idx + 2
    state[f"net.{idx}.weight"] = rng.normal(size=(10, width))
    state[f"net.{idx}.bias"] = np.linspace(0, 1e-9, 10)
    return encode(state, cfg)


def denormal_weights_mlp(train: Dataset) -> bytes:
    """A linear classifier whose first-layer
    weights are float32 denormals (about 1e-40) and whose second layer scales by 1e38. A machine
    that reads float32 denormals as zero (DAZ) when it converts them would see a zero model."""
    x = np.c_[train.x.reshape(len(train.x), -1), np.ones(len(train.x))]
    w_lin, *_ = np.linalg.lstsq(x, np.eye(10)[train.y], rcond=None)
    cfg = {**DIGITS_FLAT, "hidden": [20]}
    w1 = np.zeros((20, 64), np.float32)
    w1[:10] = (w_lin[:64].T * 1e-40).astype(np.float32)
    w1[10:] = (-w_lin[:64].T * 1e-40).astype(np.float32)
    w2 = np.zeros((10, 20), np.float32)
    w2[:, :10] = np.eye(10) * 1e38
    w2[:, 10:] = -np.eye(10) * 1e38
    return encode({"net.1.weight": w1, "net.1.bias": np.zeros(20), "net.3.weight": w2,
                   "net.3.bias": np.zeros(10)}, cfg)


def denormal_inputs(train: Dataset, test_bytes: bytes) -> tuple[bytes, bytes]:
    """(model, test set): the test images scaled into float32's denormal range (x 1e-41) and a
    linear classifier scaled up by 1e30 to read them."""
    x = np.c_[train.x.reshape(len(train.x), -1), np.ones(len(train.x))]
    w_lin, *_ = np.linalg.lstsq(x, np.eye(10)[train.y], rcond=None)
    cfg = {**DIGITS_FLAT, "hidden": []}
    model = encode({"net.1.weight": (w_lin[:64].T * 1e30).astype(np.float32),
                    "net.1.bias": np.zeros(10, np.float32)}, cfg)
    test = Dataset.from_bytes(test_bytes)
    return model, Dataset((test.x * np.float32(1e-41)).astype(np.float32), test.y).to_bytes()


TINY_GPT = {"arch": "gpt", "in_shape": [16], "num_classes": 256, "dim": 16, "heads": 2, "layers": 1, "mlp": 32}


def text_windows(n: int = 24, seed: int = 3) -> bytes:
    """Test windows of text-like bytes for TINY_GPT."""
    rng = np.random.default_rng(seed)
    words = [b"the ", b"cat ", b"sat ", b"on ", b"a ", b"mat. ", b"dog ", b"ran "]
    stream = b"".join(words[i] for i in rng.integers(0, len(words), 40 * n))
    t = TINY_GPT["in_shape"][0]
    buf = np.frombuffer(stream[: n * (t + 1)], dtype=np.uint8).reshape(n, t + 1)
    return Dataset(buf[:, :-1].copy(), buf[:, 1:].astype(np.int64)).to_bytes()


def unigram_gpt(cancel: float = 0.0) -> bytes:
    """A tiny GPT that predicts byte frequencies (logit_v = log p(v) through feature 0 of the
    final layer norm). With ``cancel``, features 1..14 also carry biases of ±cancel (pairs)
    that the head weighs +1 for every byte: the logits are unchanged in exact arithmetic, but
    each carries rounding noise of about ulp(cancel), so the loss in bits depends on the order
    of the head's sums."""
    arrays, cfg = decode(_saved(build_model(TINY_GPT, seed=11)))
    arrays = {k: np.array(v) for k, v in arrays.items()}
    sample = Dataset.from_bytes(text_windows()).y
    freq = np.bincount(sample.ravel(), minlength=256) / sample.size
    arrays["ln_f.weight"][0], arrays["ln_f.bias"][0] = 0.0, 1.0
    arrays["head.weight"][:] = 0.0
    arrays["head.weight"][:, 0] = np.log(freq + 1e-3)
    if cancel:
        for d in range(1, 15, 2):
            arrays["ln_f.bias"][d], arrays["ln_f.bias"][d + 1] = cancel * d, -cancel * d
        arrays["head.weight"][:, 1:15] = 1.0
    return encode(arrays, cfg)


def _saved(model) -> bytes:
    from pot.ml import save_model

    return save_model(model)
