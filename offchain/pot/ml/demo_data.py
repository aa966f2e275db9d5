"""Data the demos and tests generate: a text corpus from a fixed grammar, and images of shapes.

Both come from :class:`SplitMix64` (integer arithmetic only), so the same seed gives the same
bytes with any Python, numpy or platform: the corpus is pinned by this file, not by a library's
random stream. They are written as a client's own files (a text file; a folder of PNG images with
one sub-folder per class), so a demo exercises the same path a user's data takes.
"""

from __future__ import annotations

from pathlib import Path

MASK64 = (1 << 64) - 1


class SplitMix64:
    """Steele, Lea and Flood's SplitMix64: a tiny, well-mixed 64-bit generator."""

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """An integer in [0, n) (the modulo bias of 2**64 mod n is negligible here)."""
        return self.next() % n

    def choice(self, items):
        return items[self.below(len(items))]


_ADJ = ["small", "quiet", "bright", "old", "green", "honest", "busy", "cold", "gentle", "tired"]
_NOUN = ["miner", "validator", "client", "model", "block", "river", "garden", "teacher", "robot", "cat"]
_VERB = ["trains", "checks", "finds", "carries", "builds", "watches", "repairs", "follows", "paints", "counts"]
_PLACE = ["near the bridge", "in the morning", "under the tree", "on the chain", "at the market",
          "after the rain", "before dinner", "by the window"]


def grammar_text(n_bytes: int, seed: int = 0) -> bytes:
    """ASCII sentences from a small fixed grammar (subject verb object, optional place, numbers),
    about ``n_bytes`` long: structured enough that a tiny language model learns it in a minute."""
    rng = SplitMix64(seed)
    out: list[str] = []
    size = 0
    while size < n_bytes:
        subj = f"the {rng.choice(_ADJ)} {rng.choice(_NOUN)}" if rng.below(2) else f"a {rng.choice(_NOUN)}"
        obj = f"{1 + rng.below(9)} {rng.choice(_NOUN)}s" if rng.below(3) == 0 else f"the {rng.choice(_NOUN)}"
        s = f"{subj} {rng.choice(_VERB)} {obj}"
        if rng.below(2):
            s += f" {rng.choice(_PLACE)}"
        s = s[0].upper() + s[1:] + ("." if rng.below(5) else "!")
        out.append(s)
        size += len(s) + 1
    return (" ".join(out) + "\n").encode("ascii")[:n_bytes]


SHAPES = ("circle", "cross", "diagonal", "ring", "square", "stripes")


def shape_image(kind: str, size: int, rng: SplitMix64) -> list[list[int]]:
    """A ``size`` x ``size`` grey image (rows of 0..255) of one shape at a random place, scale
    and brightness, on a noisy background: small and faint ones are hard to tell apart."""
    r = max(2, size // 8 + rng.below(max(1, size // 4)))
    cx = r + rng.below(max(1, size - 2 * r))
    cy = r + rng.below(max(1, size - 2 * r))
    fg = 90 + rng.below(166)
    img = []
    for y in range(size):
        row = []
        for x in range(size):
            dx, dy = x - cx, y - cy
            d2 = dx * dx + dy * dy
            if kind == "circle":
                on = d2 <= r * r
            elif kind == "ring":
                on = (r - 1) * (r - 1) <= d2 <= r * r + r
            elif kind == "square":
                on = abs(dx) <= r * 3 // 4 and abs(dy) <= r * 3 // 4
            elif kind == "cross":
                on = (abs(dx) <= 1 and abs(dy) <= r) or (abs(dy) <= 1 and abs(dx) <= r)
            elif kind == "diagonal":
                on = abs(dx - dy) <= 1 and abs(dx) <= r
            else:  # stripes
                on = abs(dx) <= r and abs(dy) <= r and (y // 2) % 2 == 0
            noise = rng.below(96)
            row.append(min(255, max(fg - noise // 2, noise)) if on else noise)
        img.append(row)
    return img


def write_shape_images(root: str | Path, per_class: int = 60, size: int = 16, seed: int = 0) -> Path:
    """A folder of PNG images, one sub-folder per shape (the layout ``--data`` takes)."""
    from PIL import Image

    root = Path(root)
    rng = SplitMix64(seed)
    for kind in SHAPES:
        d = root / kind
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            rows = shape_image(kind, size, rng)
            im = Image.new("L", (size, size))
            im.putdata([v for row in rows for v in row])
            im.save(d / f"{kind}-{i:04d}.png")
    return root


def write_corpus(path: str | Path, n_bytes: int = 120_000, seed: int = 0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(grammar_text(n_bytes, seed))
    return path
