"""A task from files: the spec, the training set miners get and the test set the client keeps.

:func:`build_task` reads and checks everything locally and uploads nothing; :func:`upload_task`
puts the training set, the initial weights (when fine-tuning) and the spec on a content store and
computes the test set's CID without storing it (it stays secret until the release). The formats
are in docs/FORMATS.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pot.ml import Dataset, TaskSpec, TrainHints, make_dataset, model_config_for
from pot.ml.archs import check_config
from pot.ml.modelfile import ModelFileError, decode, read_model_file
from pot.ml.userdata import default_arch, load, model_config, split
from pot.ml.validation import REFERENCE_OPS_PER_S, for_arch, reference_seconds
from pot.storage import ContentStore, compute_cid

#: what a task spec's train_data_cid holds until the training set is uploaded
PENDING_CID = "pending"


@dataclass(frozen=True)
class TaskOptions:
    """How to turn data into a task; every field has the default of ``pot client place-order``.

    ``data`` is a path to your own files (docs/DATA.md: an image folder, ``.npz``/``.safetensors``
    arrays, a ``.csv``, a text file or folder); without it the built-in ``dataset`` is used."""

    data: str | Path | None = None
    dataset: str = "digits"
    data_kind: str = "auto"
    image_size: int = 32
    channels: int | None = None
    context: int = 64
    label_column: str | None = None
    test_fraction: float = 0.25
    data_seed: int = 0
    #: mlp, cnn, lstm, resnet or gpt; None: resnet for images, gpt for text, else mlp
    arch: str | None = None
    #: extra architecture fields, e.g. ``{"hidden": [64]}``
    model: dict[str, Any] = field(default_factory=dict)
    init_seed: int = 0
    #: a model file every miner starts from (fine-tuning); its CID goes in the spec
    init_weights: str | Path | None = None
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    #: the validation function (the order's modelType); None: the one for the architecture
    metric: str | None = None


@dataclass(frozen=True)
class Task:
    """A task built locally: nothing uploaded yet (``spec.train_data_cid`` is a placeholder)."""

    spec: TaskSpec
    train_bytes: bytes
    test_bytes: bytes
    #: what is being ordered, in one line for the user
    summary: str
    init_weights: bytes | None = None


@dataclass(frozen=True)
class PreparedTask:
    """A task whose spec and training set are on the store; the test set is still only here."""

    spec: TaskSpec
    spec_json: bytes
    spec_cid: str
    train_cid: str
    test_bytes: bytes
    test_cid: str
    summary: str = ""

    @property
    def metric(self) -> str:
        """The validation function: the order's ``modelType``."""
        return self.spec.metric


def build_task(options: TaskOptions | None = None, /, *, validate_duration: int | None = None,
               **fields: Any) -> Task:
    """Read, split and check the data, and write the task spec; nothing is uploaded.

    ``build_task(TaskOptions(...))`` or ``build_task(data="photos/", arch="resnet", epochs=5)``.
    With ``validate_duration`` (seconds), also checks that scoring one model fits the validation
    window. Raises ValueError with one line for the user (a bad file, an architecture that does not
    fit the data, initial weights of another architecture, a test set over the validation budget)."""
    opts = dataclasses.replace(options or TaskOptions(), **fields)
    if opts.data:
        user = load(opts.data, opts.data_kind, image_size=(opts.image_size, opts.image_size),
                    channels=opts.channels, context=opts.context, label_column=opts.label_column)
        train, test = split(user, opts.test_fraction, opts.data_seed)
        model = model_config(user, opts.arch or default_arch(user), opts.model)
        train_bytes, test_bytes = train.to_bytes(), test.to_bytes()
        what = user.description
    else:
        train_bytes, test_bytes = make_dataset(opts.dataset, opts.data_seed, opts.test_fraction)
        model = model_config_for(opts.dataset, opts.arch or "mlp", **opts.model)
        test = Dataset.from_bytes(test_bytes)
        what = f"built-in data set {opts.dataset}"
    init_bytes = init_cid = None
    if opts.init_weights:
        path = Path(opts.init_weights).expanduser()
        try:
            _, init_cfg = decode(read_model_file(path))
        except (ModelFileError, OSError) as exc:
            raise ValueError(f"initial weights {opts.init_weights}: {exc}") from None
        if init_cfg != check_config(model):
            raise ValueError(f"initial weights {opts.init_weights} are a {init_cfg} model; the order trains "
                             f"{check_config(model)} (set the architecture and model fields to match)")
        init_bytes = path.read_bytes()
        init_cid = str(compute_cid(init_bytes))
    spec = TaskSpec(model=model, train_data_cid=PENDING_CID, metric=opts.metric or for_arch(model["arch"]),
                    init_seed=None if init_cid else opts.init_seed, init_weights_cid=init_cid,
                    hints=TrainHints(epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr),
                    test_samples=len(test.y))
    Dataset.from_bytes(test_bytes).check_for(spec.model)
    seconds = scoring_seconds(spec)
    if validate_duration is not None:
        check_validation_window(spec, validate_duration)
    summary = (f"{what}; {len(train_bytes):,} bytes of training data to miners, {len(test.y):,} test samples "
               f"kept here; model {spec.model['arch']}, metric {spec.metric}, scoring about {seconds:.1f} s "
               "per model on a reference validator")
    return Task(spec, train_bytes, test_bytes, summary, init_bytes)


def scoring_seconds(spec: TaskSpec) -> float:
    """How long a reference validator takes to score one model of ``spec`` on its test set."""
    return reference_seconds(spec.model, spec.test_samples or 0)


def check_validation_window(spec: TaskSpec, validate_duration: int) -> None:
    """Raise ValueError when scoring one model does not fit ``validate_duration`` seconds."""
    seconds = scoring_seconds(spec)
    if seconds > validate_duration:
        raise ValueError(f"scoring one model on {spec.test_samples:,} test samples takes about {seconds:.0f} s on "
                         f"a reference validator ({REFERENCE_OPS_PER_S / 1e9:g}e9 operations/s); the validation "
                         f"window is {validate_duration} s: raise --validate-duration (OrderTerms.validate_duration) or "
                         "use fewer test samples or a smaller model")


def upload_task(task: Task, store: ContentStore) -> PreparedTask:
    """Put the training set, the initial weights and the spec on ``store``; the test set's CID is
    computed, not stored (it is uploaded at the release)."""
    train_cid = store.add_bytes(task.train_bytes)
    if task.init_weights is not None and store.add_bytes(task.init_weights) != task.spec.init_weights_cid:
        raise ValueError("the store gave the initial weights another CID than computed")
    spec = dataclasses.replace(task.spec, train_data_cid=train_cid)
    spec_json = spec.to_json()
    spec_cid = store.add_bytes(spec_json)
    return PreparedTask(spec, spec_json, spec_cid, train_cid, task.test_bytes, str(compute_cid(task.test_bytes)),
                        task.summary)
