"""The client: place an order, release the test data in its window, fetch and check the winner.

Placing an order builds a task spec (architecture, initial-weights seed, training-data CID,
validation function, training hints), uploads the spec and the training data, and commits to
the test set on-chain (``testCommitment`` binds the client, the test CID and a secret salt), so
the client cannot pick a test set after seeing the models. The test set and the salt stay in
the client's state directory until the release window ``[revealEnd, releaseEnd)``, when the
test file is uploaded first and then opened on-chain (``releaseTestData``: its block time is
t3). After the settlement the client fetches the winning model, checks it against its mid and
scores it on its own test set.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from pot.protocol.ids import test_commitment
from pot.protocol.timeline import Phase
from pot.roles.base import Worker, build_worker, run_worker, worker_state_path
from pot.roles.config import ClientConfig
from pot.roles.events import Kind

ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class PreparedTask:
    spec_json: bytes
    spec_cid: str
    train_cid: str
    test_bytes: bytes
    test_cid: str


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

    def _save_state(self, order_id: int, state: dict[str, Any]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._state_file(order_id).with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        os.replace(tmp, self._state_file(order_id))

    def tracked_orders(self) -> list[int]:
        if not self.state_dir.exists():
            return []
        return sorted(int(p.stem.split("-")[1]) for p in self.state_dir.glob("order-*.json"))

    # -- placing ----------------------------------------------------------------------------

    async def prepare_task(self) -> PreparedTask:
        """Split the data set, upload the training part and the spec; the test part stays here
        (only its CID, computed without storing it, goes into the commitment)."""
        from pot.ml import TaskSpec, TrainHints, make_dataset, model_config_for
        from pot.storage import compute_cid

        cfg = self.config
        train_bytes, test_bytes = await asyncio.to_thread(make_dataset, cfg.dataset, cfg.data_seed)
        train_cid = await asyncio.to_thread(self.store.add_bytes, train_bytes)
        spec = TaskSpec(model=model_config_for(cfg.dataset, cfg.arch, **cfg.model), train_data_cid=train_cid,
                        metric=cfg.model_type, init_seed=cfg.init_seed,
                        hints=TrainHints(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr))
        spec_json = spec.to_json()
        spec_cid = await asyncio.to_thread(self.store.add_bytes, spec_json)
        return PreparedTask(spec_json, spec_cid, train_cid, test_bytes, str(compute_cid(test_bytes)))

    async def place_order(self, task: PreparedTask | None = None) -> int:
        """Upload, commit to the test set, approve and place the order; returns the order id."""
        from pot.chain.clients import OrderSpec

        if self.chain is None:
            raise ValueError("placing an order is an on-chain transaction: the client needs chain access")
        cfg = self.config
        task = task or await self.prepare_task()
        salt = os.urandom(32)
        commitment = test_commitment(self.address, task.test_cid, salt)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        test_file = self.state_dir / f"test-{task.test_cid}.npz"
        test_file.write_bytes(task.test_bytes)
        state = {"testCid": task.test_cid, "salt": "0x" + salt.hex(), "testFile": str(test_file),
                 "specCid": task.spec_cid, "trainCid": task.train_cid, "released": False}
        # the salt is on disk before the order exists: losing it would make the release impossible
        pending = self.state_dir / f"pending-{commitment.hex()[:16]}.json"
        pending.write_text(json.dumps(state))
        c = self.chain.contracts
        await self.chain.call(c.token.ensure_allowance, self.chain.sender, c.orders.address, cfg.reward)
        # positional: the field order is placeOrder's ABI, its Python names have moved before
        res = await self.chain.call(c.orders.place_order, self.chain.sender, OrderSpec(
            cfg.reward, cfg.train_duration, cfg.validate_duration, cfg.challenge_duration, cfg.reveal_duration,
            cfg.model_type, commitment, task.spec_cid))
        order_id = int(res.event("OrderPlaced")["orderId"])
        self._save_state(order_id, {**state, "orderId": order_id, "tx": res.tx_hash})
        pending.unlink(missing_ok=True)
        await self._publish_task(order_id)
        self.emit(Kind.ORDER_PLACED, order_id, reward=cfg.reward, spec_cid=task.spec_cid, test_cid=task.test_cid,
                  train_duration=cfg.train_duration)
        return order_id

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
        state = self.load_state(order_id)
        test_bytes = Path(state["testFile"]).read_bytes()
        cid = await asyncio.to_thread(self.store.add_bytes, test_bytes)
        if cid != state["testCid"]:
            raise ValueError(f"test file {state['testFile']} now has CID {cid}, the order committed to "
                             f"{state['testCid']}")
        await asyncio.to_thread(self.store.pin, cid)
        await self.publish(order_id, cid, "test data", test_bytes)  # before t3: validators fetch it at once
        c = self.chain.contracts
        res = await self.chain.call(c.orders.release_test_data, self.chain.sender, order_id, cid,
                                    bytes.fromhex(state["salt"][2:]))
        t3 = int(res.event("TestDataReleased")["t3"])
        self._save_state(order_id, {**state, "released": True, "t3": t3})
        self.emit(Kind.TEST_RELEASED, order_id, test_cid=cid, t3=t3)
        return t3

    # -- the result -------------------------------------------------------------------------

    async def fetch_result(self, order_id: int) -> FetchResult | None:
        """Once the ledger settled the order: fetch the winning model, check it against its mid,
        score it on our own test set and compare with the score the network gave it.
        None while the order is not settled."""
        from pot.ml import score

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
        cid = await self.gateway.model_link(mid)
        if cid is None:
            raise ValueError(f"the ledger names winner {mid.hex()} but has no link to it")
        model = await asyncio.to_thread(self.store.get, cid)
        if hashlib.sha256(model).digest() != mid:
            raise ValueError(f"model {cid} does not hash to the winning mid 0x{mid.hex()}")
        state = self.load_state(order_id)
        test_bytes = Path(state["testFile"]).read_bytes()
        local = await asyncio.to_thread(score, model, test_bytes, cyc.order.model_type_name)
        path = self.state_dir / f"winner-{order_id}-{mid.hex()[:16]}.safetensors"
        path.write_bytes(model)
        ledger_score = _standing_score(cyc, mid)
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


def _standing_score(cyc, mid: bytes) -> int | None:
    """The committee's PoT.Verify score if taken, else the score its validators agreed on."""
    m = cyc.model(mid)
    if m is not None and m.verified_score is not None:
        return m.verified_score
    for raw in cyc.raw["models"]:
        if raw["mid"] == "0x" + mid.hex():
            scores = {v["score"] for v in raw["validations"]}
            return scores.pop() if len(scores) == 1 else None
    return None


def build(config: ClientConfig, account=None) -> Client:
    """A client wired to the chain, the store and the committee's API, from its config (the key:
    ``account``, else the config's keystore or $POT_PRIVATE_KEY)."""
    return build_worker(Client, config, account)


async def run(config: ClientConfig) -> int | None:
    """``pot client run``: release and fetch for every order in the state directory, until stopped."""
    return await run_worker(Client, config)
