"""Machine learning for PoT: architectures, data sets, the miner's training loop, model files and
the deterministic validation functions (ARCHITECTURE.md §3).

The workers call:

- :func:`build_model` (config, seed) and :data:`pot.ml.archs.REGISTRY`;
- :func:`make_dataset` (name, seed) -> (train npz bytes, test npz bytes), :class:`Dataset`;
- :class:`TaskSpec` (the file behind ``specCid``) with its :class:`TrainHints`;
- :func:`train` (model, data, hints, deadline=, on_improve=) -> :class:`TrainResult`;
- :func:`save_model` / :func:`load_model` (canonical safetensors bytes) and :func:`mid`;
- :func:`score` (model bytes, test bytes, name) -> int: the validation functions of
  :mod:`pot.ml.validation`, computed by the reference forward passes of :mod:`pot.ml.reference`
  in the fixed-order arithmetic of :mod:`pot.ml.exact` (docs/VALIDATION.md).

Nothing here touches the network or the store: the workers move bytes and CIDs.
"""

from pot.ml.archs import ArchitectureError, build_model, check_config
from pot.ml.datasets import Dataset, DatasetError, make_dataset, model_config_for
from pot.ml.modelfile import (
    ModelFileError,
    decode,
    encode,
    load_model,
    mid,
    read_model_file,
    save_model,
    write_model_file,
)
from pot.ml.spec import SpecError, TaskSpec, TrainHints
from pot.ml.train import Checkpoint, TrainResult, train
from pot.ml.validation import ValidationError, score

__all__ = [
    "ArchitectureError",
    "Checkpoint",
    "Dataset",
    "DatasetError",
    "ModelFileError",
    "SpecError",
    "TaskSpec",
    "TrainHints",
    "TrainResult",
    "ValidationError",
    "build_model",
    "check_config",
    "decode",
    "encode",
    "load_model",
    "make_dataset",
    "mid",
    "model_config_for",
    "read_model_file",
    "save_model",
    "score",
    "train",
    "write_model_file",
]
