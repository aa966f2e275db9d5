"""Fetching a revealed model and the released test set, and scoring it (validators, verifiers).

A model that cannot be fetched right now is *unavailable* (retry later); a model whose bytes
do not hash to its ``mid``, or that is not an acceptable model file for the test set, scores 0:
that outcome is the same on every honest machine, so honest validators still agree.
"""

from __future__ import annotations

import asyncio
import hashlib

#: bounds every fetch: far above any model or test set this network trains on one machine
MAX_FETCH_BYTES = 2 * 1024**3


class Unavailable(RuntimeError):
    """The model or test data could not be fetched now."""


class Scorer:
    def __init__(self, store, max_bytes: int = MAX_FETCH_BYTES) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self._test: dict[str, bytes] = {}
        self._scores: dict[tuple[bytes, str, str], tuple[int, str]] = {}

    async def fetch(self, cid: str) -> bytes:
        from pot.storage import StorageError

        try:
            return await asyncio.to_thread(self.store.get, cid, max_size=self.max_bytes)
        except StorageError as exc:
            raise Unavailable(f"{cid}: {exc}") from None

    async def test_data(self, test_cid: str) -> bytes:
        if test_cid not in self._test:
            self._test[test_cid] = await self.fetch(test_cid)
        return self._test[test_cid]

    async def score(self, mid: bytes, model_cid: str, test_cid: str, model_type: str) -> tuple[int, str]:
        """(score in ppm, note): note is "" for a normal score, else why the model scored 0."""
        key = (mid, test_cid, model_type)
        if key in self._scores:
            return self._scores[key]
        from pot.ml import ModelFileError, ValidationError, score
        from pot.ml.datasets import DatasetError
        from pot.ml.validation import REGISTRY

        if model_type not in REGISTRY:
            raise ValueError(f"no validation function {model_type!r} here (known: {sorted(REGISTRY)})")
        test = await self.test_data(test_cid)
        model = await self.fetch(model_cid)
        if hashlib.sha256(model).digest() != mid:
            result = (0, f"file {model_cid} does not hash to the revealed mid")
        else:
            try:
                result = (await asyncio.to_thread(score, model, test, model_type), "")
            except ValidationError as exc:
                result = (0, f"not scorable: {exc}")
            except (ModelFileError, DatasetError) as exc:
                result = (0, f"not an acceptable model file: {exc}")
        self._scores[key] = result
        return result
