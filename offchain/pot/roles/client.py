"""The client: place an order, release the test data in its window, fetch and check the winner.

Placing an order builds a task spec (architecture, initial weights by seed or by the CID of a
model file to fine-tune, training-data CID, validation function, training hints), from a built-in
data set or the client's own files (:mod:`pot.ml.userdata`: an image folder, arrays, CSV, text),
uploads the spec and the training data, and commits to
the test set on-chain (``testCommitment`` binds the client, the test CID and a secret salt), so
the client cannot pick a test set after seeing the models. The test set and the salt stay in
the client's state directory until the release window ``[revealEnd, releaseEnd)``, when the
test file is uploaded first and then opened on-chain (``releaseTestData``: its block time is
t3). After the settlement the client fetches the winning model, checks it against its mid and
scores it on its own test set.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from pot.ml import TaskSpec, score
from pot.protocol.timeline import Phase
from pot.roles.base import Worker, build_worker, run_worker, worker_state_path
from pot.roles.config import ClientConfig
from pot.roles.events import Kind
from pot.sdk import orders, task
from pot.sdk.models import check_model_file, check_reveal, standing_score
from pot.sdk.orders import ZERO_ADDRESS
from pot.sdk.task import PreparedTask, Task


@dataclass(frozen=True)
class FetchResult:
    order_id: int
    winner: str
    mid: bytes | None
    model_cid: str | None
    model_path: Path | None
    local_score: int | None
    ledger_score: int | None
    executed: bool

    @property
    def ok(self) -> bool:
        """A winner whose file matches its mid and whose score we reproduced."""
        return self.mid is not None and self.local_score is not None and self.local_score == self.ledger_score


class Client(Worker):
    role = "client"
    config_class = ClientConfig

    def __init__(self, config: ClientConfig | None = None, **kw) -> None:
        super().__init__(config, **kw)
        self.state_dir = worker_state_path(self.config.state_dir, "client", self.domain, self.address)
        self.results: dict[int, FetchResult] = {}

    # -- local state (the salt and the test set must survive restarts) ------------------------

    def _state_file(self, order_id: int) -> Path:
        return self.state_dir / f"order-{order_id}.json"

    def load_state(self, order_id: int) -> dict[str, Any]:
        try:
            return json.loads(self._state_file(order_id).read_text())
        except FileNotFoundError:
            raise ValueError(f"no local state for order {order_id} in {self.state_dir}: "
                             "was it placed from this account and state directory?") from None

    def load_secret(self, order_id: int) -> orders.OrderSecret:
        """The order's test set and salt, as :meth:`place_order` kept them."""
        self.load_state(order_id)  # the one-line error for an order placed elsewhere
        return orders.OrderSecret.load(self._state_file(order_id), client=self.address)

    def _save_state(self, order_id: int, state: dict[str, Any]) -> None:
        tmp = self._state_file(order_id).with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        os.replace(tmp, self._state_file(order_id))

    def tracked_orders(self) -> list[int]:
        if not self.state_dir.exists():
            return []
        return sorted(int(p.stem.split("-")[1]) for p in self.state_dir.glob("order-*.json"))

    # -- placing ----------------------------------------------------------------------------

    async def prepare_task(self, built: Task | None = None) -> PreparedTask:
        """Split the data set, upload the training part and the spec; the test part stays here
        (only its CID, computed without storing it, goes into the commitment).

        Raises ValueError (one line, for the user) for data, an architecture or initial weights
        that cannot make an order."""
        built = built or await asyncio.to_thread(build_task, self.config)
        return await asyncio.to_thread(task.upload_task, built, self.store)

    async def place_order(self, prepared: PreparedTask | None = None) -> int:
        """Upload, commit to the test set, approve and place the order; returns the order id."""
        if self.chain is None:
            raise ValueError("placing an order is an on-chain transaction: the client needs chain access")
        cfg = self.config
        prepared = prepared or await self.prepare_task()
        self.emit(Kind.TASK_PREPARED, summary=prepared.summary)
        terms = orders.OrderTerms(cfg.reward, cfg.train_duration, cfg.validate_duration, cfg.challenge_duration,
                                  cfg.reveal_duration)
        pending: list[Path] = []
        # the salt is on disk before the order exists: losing it would make the release impossible
        secret = await self.chain.call(orders.place_order, self.chain.contracts, self.chain.sender, prepared, terms,
                                       keep=lambda s: pending.append(s.save(self.state_dir, released=False)))
        secret.save(self.state_dir, released=False)
        for p in pending:
            p.unlink(missing_ok=True)
        await self._publish_task(secret.order_id)
        self.emit(Kind.ORDER_PLACED, secret.order_id, reward=cfg.reward, spec_cid=prepared.spec_cid,
                  test_cid=prepared.test_cid, train_duration=cfg.train_duration)
        return secret.order_id

    async def _publish_task(self, order_id: int) -> bool:
        """Upload the order's training data and spec to the committee (the data first, so a miner
        that finds the spec finds what it names): miners on other machines read them from there.
        A failure is reported and left to ``run``'s next step."""
        state = self.load_state(order_id)
        try:
            await self.publish(order_id, state["trainCid"], "training data")
            await self.publish(order_id, state["specCid"], "task spec")
        except Exception as exc:  # noqa: BLE001 - the order stands; `pot client run` tries again
            self.emit(Kind.ERROR, order_id, exc=exc, error=f"could not upload the task to the committee ({exc}); "
                                                            "`pot client run` tries again")
            self._save_state(order_id, {**state, "published": False})
            return False
        self._save_state(order_id, {**state, "published": True})
        return True

    # -- releasing --------------------------------------------------------------------------

    async def release(self, order_id: int) -> int:
        """Upload the test set (checked against the committed CID), then open the commitment
        on-chain; returns t3. The chain refuses it outside ``[revealEnd, releaseEnd)``."""
        if self.chain is None:
            raise ValueError("releasing the test data is an on-chain transaction: the client needs chain access")
        secret = self.load_secret(order_id)
        # on the committee before t3: validators fetch it at once
        await self.publish(order_id, secret.test_cid, "test data", secret.test_bytes)
        t3 = await self.chain.call(orders.release_test_data, self.chain.contracts, self.chain.sender, self.store,
                                   secret)
        self._save_state(order_id, {**self.load_state(order_id), "released": True, "t3": t3})
        self.emit(Kind.TEST_RELEASED, order_id, test_cid=secret.test_cid, t3=t3)
        return t3

    # -- the result -------------------------------------------------------------------------

    async def fetch_result(self, order_id: int) -> FetchResult | None:
        """Once the ledger settled the order: fetch the winning model, check it back to the
        winner's commitment, its mid and the spec (:mod:`pot.sdk.models`), score it on our own
        test set and compare with the score the network gave it. None while the order is not settled."""
        cyc = await self.gateway.cycle(order_id)
        if cyc is None or cyc.nonce is None:
            return None
        st = await self.gateway.settlement(cyc.nonce)
        if st is None:
            return None
        os_ = st.for_order(order_id)
        if os_ is None:
            return None
        winner = to_checksum_address(os_.winner)
        if winner == to_checksum_address(ZERO_ADDRESS):
            result = FetchResult(order_id, winner, None, None, None, None, None, st.executed)
            self.emit(Kind.NO_WINNER, order_id, executed=st.executed)
            self.results[order_id] = result
            return result
        mid = os_.winning_mid
        cid = check_reveal(cyc, order_id, winner, mid).model_cid
        spec = TaskSpec.from_json(await asyncio.to_thread(self.store.get, cyc.order.spec_cid))
        model = await asyncio.to_thread(self.store.get, cid, max_size=spec.max_model_bytes)
        await asyncio.to_thread(check_model_file, model, mid, spec)
        secret = self.load_secret(order_id)
        local = await asyncio.to_thread(score, model, secret.test_bytes, cyc.order.model_type_name)
        path = self.state_dir / f"winner-{order_id}-{mid.hex()[:16]}.safetensors"
        path.write_bytes(model)
        ledger_score = standing_score(cyc, mid)
        result = FetchResult(order_id, winner, mid, cid, path, local, ledger_score, st.executed)
        self.results[order_id] = result
        self.emit(Kind.MODEL_FETCHED, order_id, winner=winner, mid=mid, cid=cid, path=str(path),
                  local_score=local, network_score=ledger_score, executed=st.executed)
        if not result.ok:
            self.emit(Kind.ERROR, order_id, error=f"local score {local} differs from the network's {ledger_score}")
        return result

    async def _step(self) -> None:
        for oid in self.tracked_orders():
            if oid in self.results:
                continue
            state = self.load_state(oid)
            cyc = await self.gateway.cycle(oid)
            if cyc is None:
                continue
            ph = self.track_phase(cyc.order, cyc.t3)
            if state.get("published") is False and ph is Phase.TRAINING:
                await self._publish_task(oid)
            if ph is Phase.TEST_RELEASE and not state.get("released") and cyc.t3 is None:
                await self.release(oid)
            elif cyc.nonce is not None:
                await self.fetch_result(oid)


def build_task(cfg: ClientConfig) -> Task:
    """The order's task from the client's settings, before anything is uploaded
    (:func:`pot.sdk.build_task` with the config's fields). Raises ValueError with one line for the user."""
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(task.TaskOptions) if f.name != "metric"}
    return task.build_task(task.TaskOptions(**fields, metric=cfg.model_type), validate_duration=cfg.validate_duration)


def build(config: ClientConfig, account=None) -> Client:
    """A client wired to the chain, the store and the committee's API, from its config (the key:
    ``account``, else the config's keystore or $POT_PRIVATE_KEY)."""
    return build_worker(Client, config, account)


async def run(config: ClientConfig) -> int | None:
    """``pot client run``: release and fetch for every order in the state directory, until stopped."""
    return await run_worker(Client, config)
