"""The facade a dApp or a script uses: one account on one deployment, a content store and,
for the winning model's reveal, the committee's API.

Blocking calls (web3 and the stores block); :class:`pot.roles.client.Client` runs the same
functions from its asyncio loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from pot.api.client import CommitteeClient, publish_for_order
from pot.api.views import CycleView
from pot.chain.clients import Contracts
from pot.chain.deployment import Deployment
from pot.chain.sender import Sender, connect
from pot.ml import TaskSpec
from pot.protocol.eip712 import Domain
from pot.protocol.timeline import Phase
from pot.sdk.models import NotSettled, WinningModel, check_model_file, check_reveal, standing_score
from pot.sdk.orders import (
    OrderSecret,
    OrderStatus,
    OrderTerms,
    OrderUpdate,
    OrderWatch,
    place_order,
    release_test_data,
)
from pot.sdk.task import PreparedTask, Task, TaskOptions, build_task, upload_task
from pot.storage import ContentStore, follow_mirrors, open_store

R = TypeVar("R")


class PotClient:
    """A client of the PoT network: prepare a task, place an order, release its test set, follow
    it, fetch and check the winning model.

    >>> pot = PotClient.connect("http://127.0.0.1:8545", "deployment.json", key, store="~/.pot/store",
    ...                         api_urls=["http://127.0.0.1:8701", ...])
    >>> task = pot.prepare_task(data="iris.csv", epochs=20)
    >>> order = pot.place_order(task, OrderTerms(reward=100 * 10**18), save_to="orders/")
    """

    def __init__(self, w3: Web3, deployment: Deployment, account: LocalAccount, store: ContentStore, *,
                 api_urls: Sequence[str] = (), f: int | None = None) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.account = account
        self.store = store
        self.contracts = Contracts(w3, deployment)
        self.sender = Sender(w3, account)
        self.api_urls = list(api_urls)
        self.f = f
        #: the committee epoch ``api_urls`` belong to, once learned: the client follows committee
        #: changes as workers do (``CommitteeClient``), for as long as this object lives
        self.epoch: int | None = None

    @classmethod
    def connect(cls, rpc_url: str, deployment: str | os.PathLike, key: str | bytes | LocalAccount, *,
                store: str | ContentStore | None = None, api_urls: Sequence[str] = (), f: int | None = None,
                chain_id: int | None = None) -> PotClient:
        """Connect to ``rpc_url`` with the deployment file of ``pot contracts deploy`` (or of
        ``pot devnet up``); ``store`` as ``pot --store`` takes it (a directory, a Kubo API URL),
        ``api_urls`` the committee's replicas (needed only to fetch the winning model)."""
        w3 = connect(rpc_url)
        account = key if isinstance(key, LocalAccount) else Account.from_key(key)
        d = Deployment.load(Path(deployment).expanduser(), chain_id if chain_id is not None else w3.eth.chain_id)
        # what this machine lacks (the winning model a miner uploaded) it reads from the committee
        s = store if isinstance(store, ContentStore) else open_store(
            None if store is None else os.path.expanduser(store), mirrors=list(api_urls))
        return cls(w3, d, account, s, api_urls=api_urls, f=f)

    @property
    def address(self) -> str:
        return self.account.address

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> PotClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the task --------------------------------------------------------------------------------

    def prepare_task(self, options: TaskOptions | Task | None = None, /, **fields: Any) -> PreparedTask:
        """Build a task from files (:func:`pot.sdk.build_task`'s arguments) or take a built one,
        and upload its spec and training set; the test set stays here."""
        task = options if isinstance(options, Task) else build_task(options, **fields)
        return upload_task(task, self.store)

    # -- the order -------------------------------------------------------------------------------

    def place_order(self, task: PreparedTask, terms: OrderTerms, *, salt: bytes | None = None,
                    save_to: str | os.PathLike | None = None) -> OrderSecret:
        """Commit to the test set, approve the reward and place the order.

        With ``save_to``, the secret (salt and test set) is written there before any transaction
        (``pending-*.json``) and again with its order id (``order-<id>.json``); otherwise keeping
        the returned secret is up to you (:meth:`OrderSecret.save`)."""
        keep = None if save_to is None else (lambda s: s.save(save_to))
        secret = place_order(self.contracts, self.sender, task, terms, salt=salt, keep=keep)
        if save_to is not None:
            secret.save(save_to)
            (Path(save_to).expanduser() / _pending(secret).file_name).unlink(missing_ok=True)
        # the data first: a miner that finds the spec finds what it names
        self.publish(secret.order_id, secret.train_cid)
        self.publish(secret.order_id, secret.spec_cid)
        return secret

    def publish(self, order_id: int, cid: str, data: bytes | None = None, *, wait_s: float = 60.0) -> int:
        """Hand content order ``order_id`` references to the committee (``api_urls``), so that
        miners and validators on other machines can fetch it; returns how many replicas hold it
        (0 without ``api_urls``: then your store must be one they read). :meth:`place_order` and
        :meth:`release_test_data` call it. An order the committee's ledger does not know yet (it
        enters a few blocks after placeOrder) is waited for up to ``wait_s``."""
        if not self.api_urls:
            return 0
        data = self.store.get(cid) if data is None else data
        domain = Domain.messages(self.deployment.chain_id, self.deployment.order_book)

        async def upload() -> int:
            api = self._committee()
            try:
                return await publish_for_order(api.upload, self.address, order_id, cid, data, domain,
                                               bytes(self.account.key), wait_s=wait_s)
            finally:
                await self._done(api)

        return _run(upload)

    def release_test_data(self, order: OrderSecret) -> int:
        """Upload the test set and open the commitment on-chain (only in ``[revealEnd, releaseEnd)``);
        returns t3."""
        if order.order_id is not None:  # on the committee before t3: validators fetch it at once
            self.publish(order.order_id, order.test_cid, order.test_bytes)
        return release_test_data(self.contracts, self.sender, self.store, order)

    def watch(self, order: OrderSecret | int, *, poll_interval: float = 1.0, timeout: float | None = None,
              confirmations: int = 0) -> OrderWatch:
        """Follow the order on-chain: iterate for :class:`OrderUpdate` items (phase changes and the
        order's events) until it is settled or reclaimed."""
        order_id, block = _order_ref(order)
        return OrderWatch(self.w3, self.contracts, order_id, from_block=block, confirmations=confirmations,
                          poll_interval=poll_interval, timeout=timeout)

    def status(self, order: OrderSecret | int) -> OrderStatus:
        """Where the order stands now."""
        w = self.watch(order)
        w.poll()
        return w.status()

    def run(self, order: OrderSecret, *, on_update: Callable[[OrderUpdate], Any] | None = None,
            poll_interval: float = 1.0, timeout: float | None = None) -> OrderStatus:
        """Follow the order to its end and release its test set when its window opens; calls
        ``on_update`` for every update; returns the final status."""
        released = False
        status = None
        for update in self.watch(order, poll_interval=poll_interval, timeout=timeout):
            status = update.status
            if on_update is not None:
                on_update(update)
            if not released and status.phase is Phase.TEST_RELEASE and status.t3 is None:
                self.release_test_data(order)
                released = True
        assert status is not None
        return status

    # -- the result ------------------------------------------------------------------------------

    def fetch_winner(self, order: OrderSecret | int, *, score: bool = True,
                     test_bytes: bytes | None = None) -> WinningModel | None:
        """The settled order's winning model, checked (see :mod:`pot.sdk.models`): its reveal opens the
        winner's claim commitment, the file hashes to the settled mid and is a safetensors file of
        the spec's architecture. With ``score``, it is also scored on the test set (the secret's,
        or ``test_bytes``) for comparison with the network's score.

        None when the order settled without a winner (refunded or split); raises
        :class:`NotSettled` before the settlement, :class:`ModelCheckError` when a check fails."""
        st = self.status(order)
        if st.status != "settled":
            raise NotSettled(f"order {st.order_id} is {st.status}, phase {st.phase.value}: not settled yet")
        if st.winner is None or st.winning_mid is None:
            return None
        cycle = self.cycle(st.order_id)
        if cycle is None:
            raise NotSettled(f"the committee does not know order {st.order_id}")
        model = check_reveal(cycle, st.order_id, st.winner, st.winning_mid)
        spec = TaskSpec.from_json(self.store.get(st.order.spec_cid))
        data = self.store.get(model.model_cid, max_size=spec.max_model_bytes)
        config = check_model_file(data, st.winning_mid, spec)
        metric = st.order.model_type_name
        local = None
        if score:
            test = test_bytes if test_bytes is not None else order.test_bytes if isinstance(order, OrderSecret) else None
            if test is None:
                raise ValueError("scoring the winner needs the test set: pass the order's secret or test_bytes")
            from pot.ml import score as score_model

            local = score_model(data, test, metric)
        return WinningModel(st.order_id, st.winner, st.winning_mid, model.model_cid, data, config, metric, local,
                            standing_score(cycle, st.winning_mid))

    def _committee(self) -> CommitteeClient:
        return CommitteeClient(self.api_urls, f=self.f, epoch=self.epoch)

    async def _done(self, api: CommitteeClient) -> None:
        """Keep the committee ``api`` followed to (and fetch content from its members)."""
        await api.aclose()
        if api.epoch is not None and api.epoch != self.epoch:
            self.api_urls, self.f, self.epoch = api.urls, api.f, api.epoch
            follow_mirrors(self.store, self.api_urls)

    def cycle(self, order_id: int) -> CycleView | None:
        """The committee's cycle data of the order (claims, reveals, validations), read from f+1
        matching replicas."""
        if not self.api_urls:
            raise ValueError("reading the committee's ledger needs its API URLs (api_urls=...)")

        async def read() -> CycleView | None:
            api = self._committee()
            try:
                doc = await api.order(order_id)
            finally:
                await self._done(api)
            return None if doc is None else CycleView.from_json(doc)

        return _run(read)


def _order_ref(order: OrderSecret | int) -> tuple[int, int | None]:
    if isinstance(order, OrderSecret):
        if order.order_id is None:
            raise ValueError("this order was never placed (its secret has no order id)")
        return order.order_id, order.block
    return int(order), None


def _pending(secret: OrderSecret) -> OrderSecret:
    return replace(secret, order_id=None, tx_hash=None, block=None)


def _run(make: Callable[[], Coroutine[Any, Any, R]]) -> R:
    """Run a coroutine to completion from blocking code, also when an event loop is running in
    this thread (a notebook): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()

