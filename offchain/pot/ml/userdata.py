"""A client's own data, from files, as the training set miners get and the test set it keeps.

``pot client place-order --data PATH`` reads (the kind is guessed from PATH, or given):

==========  ==================================================  ==============================
kind        PATH                                                samples
==========  ==================================================  ==============================
``images``  a folder with one sub-folder per class, holding     uint8 ``[C, H, W]``, resized to
            PNG/JPEG files (the sub-folder's name is the class) ``--image-size``; ``--channels``
                                                                1 (grey) or 3 (RGB)
``arrays``  ``.npz`` or ``.safetensors`` with arrays ``x``      ``x[i]`` (float or uint8), label
            ``[N, ...]`` and ``y`` ``[N]`` (integer labels)     ``y[i]``
``csv``     ``.csv`` with a header row; numeric feature         float32 features, standardised
            columns and one label column (``--label-column``,  with the training part's mean
            default the last; labels may be any strings)        and deviation
``text``    a text file, or a folder of them (any bytes)        byte windows of ``--context``
                                                                bytes and the next byte at each
                                                                position, for a language model
==========  ==================================================  ==============================

Everything is read and decoded here, on the client's machine, once: the network only ever sees
the resulting arrays (npz), so image decoders and CSV parsers are not part of any validation
function. Files are the client's own, but a bad one still gets one clear line, not a traceback:
:class:`UserDataError`. :func:`split` holds out the test set (stratified by class; random
windows of text), which stays with the client until the test release.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pot.ml.datasets import MAX_DATASET_BYTES, Dataset, DatasetError, load_arrays, stratified_split

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
KINDS = ("images", "arrays", "csv", "text")
#: most classes an image folder or CSV may have, and most files a folder may hold
MAX_CLASSES = 10_000
MAX_FILES = 2_000_000


class UserDataError(DatasetError):
    """A file or folder that cannot become a data set (the message says which and why)."""


@dataclass(frozen=True)
class UserData:
    kind: str
    data: Dataset
    #: class names in label order (None for text)
    classes: list[str] | None
    description: str

    @property
    def num_classes(self) -> int:
        return 256 if self.kind == "text" else len(self.classes or [])


def guess_kind(path: Path) -> str:
    if path.is_dir():
        subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return "images" if subdirs else "text"
    suffix = path.suffix.lower()
    if suffix in (".npz", ".safetensors"):
        return "arrays"
    if suffix == ".csv":
        return "csv"
    return "text"


def load(path: str | Path, kind: str = "auto", *, image_size: tuple[int, int] = (32, 32), channels: int | None = None,
         context: int = 64, label_column: str | None = None, max_bytes: int = MAX_DATASET_BYTES) -> UserData:
    """Read ``path`` as a data set of ``kind`` ("auto": guessed from the path)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserDataError(f"{p}: no such file or folder")
    if kind == "auto":
        kind = guess_kind(p)
    if kind == "images":
        return load_images(p, image_size, channels, max_bytes)
    if kind == "arrays":
        return load_array_file(p, max_bytes)
    if kind == "csv":
        return load_csv(p, label_column, max_bytes)
    if kind == "text":
        return load_text(p, context, max_bytes)
    raise UserDataError(f"unknown data kind {kind!r}; known: auto, {', '.join(KINDS)}")


# --------------------------------------------------------------------------- images


def load_images(root: Path, size: tuple[int, int], channels: int | None, max_bytes: int) -> UserData:
    from PIL import Image, UnidentifiedImageError

    if not root.is_dir():
        raise UserDataError(f"{root}: an image data set is a folder with one sub-folder per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise UserDataError(f"{root}: found {len(classes)} class folder(s); an image data set needs at least 2 "
                            "(one sub-folder per class, e.g. cats/ and dogs/)")
    if len(classes) > MAX_CLASSES:
        raise UserDataError(f"{root}: {len(classes)} class folders; the limit is {MAX_CLASSES}")
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        found = [f for f in sorted((root / name).iterdir()) if f.is_file() and not f.name.startswith(".")]
        for f in found:
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                raise UserDataError(f"{f}: not a PNG or JPEG file (image folders hold .png, .jpg or .jpeg only)")
        if not found:
            raise UserDataError(f"{root / name}: class folder holds no images")
        files += [(f, label) for f in found]
        if len(files) > MAX_FILES:
            raise UserDataError(f"{root}: more than {MAX_FILES:,} images")
    h, w = size
    if not (1 <= h <= 4096 and 1 <= w <= 4096):
        raise UserDataError(f"image size {h}x{w} is out of range (1..4096 a side)")
    if channels is None:
        # grey only when every image is: one colour image makes the set RGB
        channels = 1
        for f, _ in files:
            with _open_image(f, Image, UnidentifiedImageError) as im:
                if im.mode not in ("1", "L", "LA", "I", "I;16", "F"):
                    channels = 3
                    break
    if channels not in (1, 3):
        raise UserDataError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    total = len(files) * channels * h * w
    if total > max_bytes:
        raise UserDataError(f"{len(files):,} images of {channels}x{h}x{w} are {total:,} bytes; the limit is "
                            f"{max_bytes:,}: use a smaller --image-size or fewer images")
    x = np.empty((len(files), channels, h, w), dtype=np.uint8)
    y = np.empty(len(files), dtype=np.int64)
    for i, (f, label) in enumerate(files):
        with _open_image(f, Image, UnidentifiedImageError) as im:
            try:
                im = im.convert("L" if channels == 1 else "RGB").resize((w, h), Image.Resampling.BILINEAR)
                a = np.asarray(im, dtype=np.uint8)
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                raise UserDataError(f"{f}: cannot decode the image: {exc}") from None
        x[i] = a[None] if channels == 1 else a.transpose(2, 0, 1)
        y[i] = label
    counts = np.bincount(y, minlength=len(classes))
    return UserData("images", Dataset(x, y), classes,
                    f"{len(files):,} images in {len(classes)} classes ({', '.join(classes[:5])}"
                    f"{', ...' if len(classes) > 5 else ''}; {counts.min()}..{counts.max()} per class), "
                    f"as {channels}x{h}x{w} uint8")


def _open_image(f: Path, Image, UnidentifiedImageError):  # noqa: N803 - PIL's names, imported lazily
    try:
        return Image.open(f)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise UserDataError(f"{f}: not a readable PNG or JPEG image: {exc}") from None


# --------------------------------------------------------------------------- arrays


def load_array_file(path: Path, max_bytes: int) -> UserData:
    size = path.stat().st_size
    if size > max_bytes:
        raise UserDataError(f"{path} is {size:,} bytes; the limit is {max_bytes:,}")
    raw = path.read_bytes()
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.numpy import load as st_load

        try:
            arrays = st_load(raw)
        except (SafetensorError, ValueError) as exc:
            raise UserDataError(f"{path}: not a safetensors file: {exc}") from None
    else:
        try:
            arrays = load_arrays(raw, max_bytes=max_bytes)
        except DatasetError as exc:
            raise UserDataError(f"{path}: {exc}") from None
    if "x" not in arrays or "y" not in arrays:
        raise UserDataError(f"{path} holds {sorted(arrays)}; it needs arrays named x (samples) and y (labels)")
    x, y = np.asarray(arrays["x"]), np.asarray(arrays["y"])
    if x.dtype != np.uint8 and x.dtype.kind != "f":
        raise UserDataError(f"{path}: x is {x.dtype}; use float (features, images in [0, 1]) or uint8 (images)")
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise UserDataError(f"{path}: y must be integer class labels [N], got {y.dtype} {list(y.shape)}")
    if x.ndim < 2 or len(x) != len(y):
        raise UserDataError(f"{path}: x must be [N, ...] with N = len(y) = {len(y)}, got {list(x.shape)}")
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise UserDataError(f"{path}: x holds NaN or infinite values")
        x = x.astype(np.float32)
    if len(y) and (y.min() < 0):
        raise UserDataError(f"{path}: labels must be 0, 1, 2, ...; found {int(y.min())}")
    try:
        data = Dataset(np.ascontiguousarray(x), y.astype(np.int64))
    except DatasetError as exc:
        raise UserDataError(f"{path}: {exc}") from None
    n_classes = int(y.max()) + 1
    return UserData("arrays", data, [str(i) for i in range(n_classes)],
                    f"{len(y):,} samples of shape {list(x.shape[1:])} ({x.dtype}), {n_classes} classes")


# --------------------------------------------------------------------------- CSV


def load_csv(path: Path, label_column: str | None, max_bytes: int) -> UserData:
    size = path.stat().st_size
    if size > max_bytes:
        raise UserDataError(f"{path} is {size:,} bytes; the limit is {max_bytes:,}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserDataError(f"{path}: not UTF-8 text: {exc}") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if len(rows) < 3:
        raise UserDataError(f"{path}: needs a header row and at least 2 data rows")
    header = [h.strip() for h in rows[0]]
    label = label_column if label_column is not None else header[-1]
    if label not in header:
        raise UserDataError(f"{path}: no column {label!r}; columns: {header}")
    li = header.index(label)
    feats = [i for i in range(len(header)) if i != li]
    if not feats:
        raise UserDataError(f"{path}: no feature columns besides the label {label!r}")
    x = np.empty((len(rows) - 1, len(feats)), dtype=np.float64)
    labels: list[str] = []
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise UserDataError(f"{path}, line {r}: {len(row)} fields; the header has {len(header)}")
        for j, i in enumerate(feats):
            try:
                x[r - 2, j] = float(row[i])
            except ValueError:
                raise UserDataError(f"{path}, line {r}: column {header[i]!r} is {row[i]!r}, not a number "
                                    "(feature columns must be numeric)") from None
        labels.append(row[li].strip())
    if not np.isfinite(x).all():
        raise UserDataError(f"{path}: a feature is NaN or infinite")
    classes = sorted(set(labels), key=_natural)
    if len(classes) < 2 or len(classes) > MAX_CLASSES:
        raise UserDataError(f"{path}: column {label!r} has {len(classes)} distinct labels; need 2..{MAX_CLASSES}")
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[v] for v in labels], dtype=np.int64)
    return UserData("csv", Dataset(x.astype(np.float32), y), classes,
                    f"{len(y):,} rows, {len(feats)} numeric features, label {label!r} with {len(classes)} classes")


def _natural(s: str):
    """Numeric labels in numeric order ("2" before "10"), others alphabetically."""
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)


# --------------------------------------------------------------------------- text


def _text_files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for f in sorted(path.rglob("*")):
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(path).parts):
            yield f


def load_text(path: Path, context: int, max_bytes: int) -> UserData:
    if not 2 <= context <= 8192:
        raise UserDataError(f"context must be 2..8192 bytes, got {context}")
    chunks, total, files = [], 0, 0
    for f in _text_files(path):
        b = f.read_bytes()
        total += len(b) + 1
        if total > max_bytes // 2:  # x and y both hold every byte
            raise UserDataError(f"{path}: more than {max_bytes // 2:,} bytes of text")
        chunks.append(b)
        files += 1
    stream = b"\n".join(chunks)
    n = (len(stream) - 1) // context
    if n < 4:
        raise UserDataError(f"{path}: {len(stream):,} bytes of text make {max(n, 0)} windows of {context} bytes; "
                            f"at least 4 are needed (more text or a smaller --context)")
    buf = np.frombuffer(stream, dtype=np.uint8)
    # window i predicts bytes [i*T + 1, (i+1)*T]: every byte is a target once
    idx = np.arange(n)[:, None] * context + np.arange(context + 1)[None, :]
    windows = buf[idx]
    return UserData("text", Dataset(np.ascontiguousarray(windows[:, :-1]), windows[:, 1:].astype(np.int64)), None,
                    f"{len(stream):,} bytes of text from {files} file(s), {n:,} windows of {context} bytes")


# --------------------------------------------------------------------------- split


def split(user: UserData, test_fraction: float = 0.2, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(training set, test set): the test set is ``test_fraction`` of every class (random text
    windows); CSV features are standardised by the training part's statistics only."""
    if not 0 < test_fraction < 1:
        raise UserDataError(f"test fraction must be in (0, 1), got {test_fraction}")
    d = user.data
    if user.kind == "text":
        perm = np.random.default_rng(seed).permutation(len(d.y))
        n_test = max(1, round(len(perm) * test_fraction))
        train_idx, test_idx = np.sort(perm[n_test:]), np.sort(perm[:n_test])
    else:
        counts = np.bincount(d.y)
        if (counts[counts > 0] < 2).any():
            lone = [user.classes[i] if user.classes else str(i) for i in np.flatnonzero(counts == 1)]
            raise UserDataError(f"class(es) {lone[:5]} have a single sample: each class needs at least 2 "
                                "(one to train on, one to test)")
        train_idx, test_idx = stratified_split(d.y, test_fraction, seed)
    train, test = d.subset(train_idx), d.subset(test_idx)
    if user.kind == "csv":
        mean = train.x.mean(axis=0)
        std = train.x.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        train = Dataset(((train.x - mean) / std).astype(np.float32), train.y)
        test = Dataset(((test.x - mean) / std).astype(np.float32), test.y)
    if len(train.y) == 0 or len(test.y) == 0:
        raise UserDataError(f"{len(d.y)} samples are too few to hold out {test_fraction:.0%} as a test set")
    return train, test


def default_arch(user: UserData) -> str:
    """What a client gets without --arch: a residual CNN for images, a GPT for text, else an MLP."""
    if user.kind == "text":
        return "gpt"
    if user.kind == "images" or (user.data.x.ndim == 4 and user.data.x.dtype == np.uint8):
        return "resnet"
    return "mlp"


def model_config(user: UserData, arch: str, fields: dict | None = None) -> dict:
    """A model config that fits the data (in_shape and num_classes filled in)."""
    cfg = {"arch": arch, "in_shape": list(user.data.x.shape[1:]), "num_classes": user.num_classes, **(fields or {})}
    if arch == "gpt" and user.kind != "text":
        raise UserDataError("a gpt model needs text data (a text file or folder)")
    if user.kind == "text" and arch != "gpt":
        raise UserDataError(f"text data trains a language model (--arch gpt), not {arch!r}")
    return cfg
