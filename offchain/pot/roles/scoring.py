"""Scoring revealed models for validators, verifiers and the committee's PoT.Verify.

:meth:`Scorer.score` fetches the order's task spec, the released test set and the model, and
returns a :data:`pot.protocol.scoring.Outcome`: ``Scored``, ``Invalid`` (a deterministic failure,
reported as 0 with its reason) or ``Abstain`` (this machine failed: nothing is reported). The
limits come from the spec: a model is fetched with the exact size of the spec's architecture
as its limit, so a larger file is refused by the store before it is read whole.

The evaluation itself runs in :class:`ScoringProcess`, a child process started with the worker:
it imports PyTorch while the worker starts (a validator's first score no longer waits for that
import, and neither does any event loop), runs under a memory limit, and is killed and restarted
past a time limit. This process never imports PyTorch.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import select
import struct
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from pot.protocol.scoring import Abstain, Invalid, Outcome
from pot.protocol.scoring import from_json as outcome_from_json
from pot.storage import CorruptObject, InvalidCid, NotFound, StorageError, TooLarge, Unsupported

log = logging.getLogger("pot.roles.scoring")


@dataclass(frozen=True)
class ScoringLimits:
    #: address space the scoring process may map beyond what PyTorch takes at its start
    memory_mb: int = 4096
    #: wall-clock seconds for one model (fetching excluded)
    timeout_s: float = 300.0
    #: seconds the scoring process may take to start (import PyTorch) on a busy machine
    startup_s: float = 120.0
    #: niceness of the scoring process: a committee replica's scoring yields to its PBFT timers
    #: and API on a shared machine; a validator's is the work it is there for
    nice: int = 0


class ScorerFailed(RuntimeError):
    """The scoring process timed out, died or spoke nonsense (it has been killed). ``retry``:
    the failure was not the model's doing (the process did not even start)."""

    def __init__(self, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


class ScoringProcess:
    """``python -m pot.ml.scoring`` as a child: one request at a time, from any thread."""

    def __init__(self, limits: ScoringLimits = ScoringLimits(), *, start: bool = True) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._hello: dict[str, Any] | None = None
        self._started = 0.0
        self.test_digest: str | None = None  # the test set the current child holds
        self.restarts = 0
        if start:
            self.start()

    def start(self) -> None:
        """Spawn the child now (it imports PyTorch in the background)."""
        cmd = [sys.executable, "-m", "pot.ml.scoring", "--memory-mb", str(self.limits.memory_mb),
               "--nice", str(self.limits.nice)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        for f in (self._proc.stdin, self._proc.stdout):
            os.set_blocking(f.fileno(), False)
        self._hello = None
        self._started = time.monotonic()
        self.test_digest = None
        # an abandoned worker (a test, a crashed caller) must not leave the child behind
        self._finalizer = weakref.finalize(self, _kill, self._proc)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._proc is not None:
            self._finalizer()
            self._proc = None

    def _fail(self, why: str, retry: bool = False) -> ScorerFailed:
        rc = self._proc.poll() if self._proc is not None else None
        self._stop()
        self.restarts += 1
        if rc is not None and rc < 0:
            why = f"{why} (scoring process killed by signal {-rc})"
        elif rc:
            why = f"{why} (scoring process exited with {rc})"
        return ScorerFailed(why, retry)

    # -- frames with a deadline (the child may hang or die at any byte) ----------------------

    def _write(self, data: bytes, deadline: float) -> None:
        fd = self._proc.stdin.fileno()
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                raise self._fail("timed out sending to the scoring process")
            try:
                n = os.write(fd, view[: 1 << 20])
            except BlockingIOError:
                continue
            except OSError as exc:
                raise self._fail(f"scoring process gone: {exc}") from None
            view = view[n:]

    def _read(self, n: int, deadline: float, what: str, retry: bool) -> bytes:
        fd = self._proc.stdout.fileno()
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise self._fail(f"timed out {what}", retry)
            try:
                chunk = os.read(fd, n - len(buf))
            except BlockingIOError:
                continue
            if not chunk:
                try:
                    self._proc.wait(timeout=2)  # reaped, so that the signal can be named
                except subprocess.TimeoutExpired:
                    pass
                raise self._fail("the scoring process died", retry)
            buf += chunk
        return bytes(buf)

    def _read_json(self, deadline: float, what: str, retry: bool = False) -> dict[str, Any]:
        (n,) = struct.unpack("<Q", self._read(8, deadline, what, retry))
        if n > 1 << 20:
            raise self._fail(f"scoring process sent a {n}-byte answer")
        try:
            doc = json.loads(self._read(n, deadline, what, retry))
        except ValueError:
            raise self._fail("scoring process sent an unreadable answer") from None
        if not isinstance(doc, dict):
            raise self._fail("scoring process sent an unreadable answer")
        return doc

    def _ensure(self) -> dict[str, Any]:
        if self._proc is None:
            self.start()
        if self._hello is None:
            self._hello = self._read_json(self._started + self.limits.startup_s,
                                          "waiting for the scoring process to start", retry=True)
        return self._hello

    def hello(self) -> dict[str, Any]:
        """The child's limits (waits for its start)."""
        with self._lock:
            return self._ensure()

    def request(self, req: dict[str, Any], blobs: dict[str, bytes], timeout: float,
                test: bytes | None = None) -> dict[str, Any]:
        """Send one request and its blobs; its answer. ``test`` goes only to a child that does not
        hold it yet. Raises :class:`ScorerFailed` (the child is then gone; the next request
        starts a new one)."""
        with self._lock:
            self._ensure()
            deadline = time.monotonic() + timeout
            blobs = dict(blobs)
            if test is not None:
                digest = hashlib.sha256(test).hexdigest()
                req = {**req, "test_digest": digest}
                if digest != self.test_digest:
                    blobs["test"] = test
            frames = [json.dumps({**req, "blobs": list(blobs)}).encode(), *blobs.values()]
            self._write(b"".join(struct.pack("<Q", len(f)) + f for f in frames), deadline)
            answer = self._read_json(deadline, f"after {timeout:g}s scoring")
            if test is not None:
                self.test_digest = req["test_digest"]
            return answer


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for f in (proc.stdin, proc.stdout):
        try:
            f.close()
        except OSError:
            pass


class Scorer:
    """Outcomes of revealed models, each computed once per (mid, test set, modelType, spec)."""

    def __init__(self, store, limits: ScoringLimits = ScoringLimits(), *, start: bool = True) -> None:
        """``start``: spawn the scoring process now (a validator, whose first score must fit a
        window), or at the first score (a committee replica, which rarely scores and whose
        PBFT timers should not share a small machine's CPU with a PyTorch import at start)."""
        self.store = store
        self.limits = limits
        self.process = ScoringProcess(limits, start=start)
        self._test: dict[str, bytes] = {}
        self._specs: dict[tuple[str, str], tuple[bytes, dict[str, Any]] | Invalid] = {}
        self._outcomes: dict[tuple[bytes, str, str, str], Outcome] = {}

    def close(self) -> None:
        self.process.close()

    async def _fetch(self, what: str, cid: str, max_size: int) -> bytes | Outcome:
        """The bytes, an Invalid (the CID names content that can never be acceptable), or an
        Abstain(retry) (not available now)."""
        try:
            return await asyncio.to_thread(self.store.get, cid, max_size=max_size)
        except TooLarge:
            return Invalid(f"{what} {cid} is over its limit of {max_size:,} bytes")
        except (InvalidCid, Unsupported) as exc:
            return Invalid(f"{what} {cid[:80]!r} is not a file CID: {exc}")
        except (NotFound, CorruptObject, StorageError) as exc:
            return Abstain(f"{what} {cid[:80]} cannot be fetched now: {exc}", retry=True)

    async def _spec(self, spec_cid: str, model_type: str) -> tuple[bytes, dict[str, Any]] | Outcome:
        key = (spec_cid, model_type)
        if key in self._specs:
            return self._specs[key]
        hello = await asyncio.to_thread(self.process.hello)
        raw = await self._fetch("task spec", spec_cid, hello["max_spec_bytes"])
        if not isinstance(raw, bytes):
            if isinstance(raw, Invalid):
                self._specs[key] = raw
            return raw
        answer = await asyncio.to_thread(self.process.request, {"op": "limits", "model_type": model_type},
                                         {"spec": raw}, self.limits.timeout_s)
        result = (raw, answer) if "max_model_bytes" in answer else outcome_from_json(answer)
        if not isinstance(result, Abstain):
            self._specs[key] = result
        return result

    async def _test_data(self, test_cid: str, max_size: int) -> bytes | Outcome:
        if test_cid not in self._test:
            got = await self._fetch("test data", test_cid, max_size)
            if not isinstance(got, bytes):
                return got
            self._test[test_cid] = got
        return self._test[test_cid]

    async def score(self, mid: bytes, model_cid: str, test_cid: str, model_type: str, spec_cid: str) -> Outcome:
        """The outcome of the model ``mid`` revealed at ``model_cid`` for an order whose spec is at
        ``spec_cid`` and whose test set is at ``test_cid``. Never raises for anything a file, a
        store or the scoring process can do; an Abstain with ``retry`` is not remembered."""
        key = (mid, test_cid, model_type, spec_cid)
        if key in self._outcomes:
            return self._outcomes[key]
        try:
            outcome = await self._score(mid, model_cid, test_cid, model_type, spec_cid)
        except ScorerFailed as exc:
            # a model that kills or stalls the scorer is not retried: it would do it again
            outcome = Abstain(str(exc), exc.retry)
        if not (isinstance(outcome, Abstain) and outcome.retry):
            self._outcomes[key] = outcome
        return outcome

    async def _score(self, mid: bytes, model_cid: str, test_cid: str, model_type: str, spec_cid: str) -> Outcome:
        spec = await self._spec(spec_cid, model_type)
        if not isinstance(spec, tuple):
            return spec
        spec_bytes, limits = spec
        test = await self._test_data(test_cid, limits["max_test_bytes"])
        if not isinstance(test, bytes):
            return test
        model = await self._fetch("model file", model_cid, limits["max_model_bytes"])
        if not isinstance(model, bytes):
            return model
        if hashlib.sha256(model).digest() != mid:
            return Invalid(f"file {model_cid} does not hash to the revealed mid")
        answer = await asyncio.to_thread(self.process.request, {"op": "score", "model_type": model_type},
                                         {"spec": spec_bytes, "model": model}, self.limits.timeout_s, test)
        return outcome_from_json(answer)
