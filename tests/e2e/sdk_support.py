"""Input files shared by the SDK examples' end-to-end tests (a module of its own: test files
cannot import each other)."""

from __future__ import annotations

import csv
from pathlib import Path


def write_iris_csv(path: Path) -> Path:
    """A user's CSV: a header, numeric features, the label as a string in the last column."""
    from sklearn.datasets import load_iris

    d = load_iris()
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sepal_length", "sepal_width", "petal_length", "petal_width", "species"])
        for x, y in zip(d.data, d.target):
            w.writerow([*x, d.target_names[y]])
    return path
