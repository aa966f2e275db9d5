"""Clients of the aggregator API: ``ApiClient`` (one replica) and ``CommitteeClient`` (BFT).

A single replica may lie. ``CommitteeClient`` asks every replica at once and accepts an answer as
soon as f+1 of them give it byte for byte (at least one of them is honest, and honest replicas at
the same ledger sequence number answer alike); a submission is done once f+1 replicas say the
message is in the ledger (or f+1 refuse it for the same reason). The slower replicas' requests
finish in the background for a short while (so their connections are reused) and are then
aborted; a replica that fails or stalls is asked only when the others cannot make a quorum.

``CommitteeClient`` also follows committee changes (docs/COMMITTEE.md): every ``refresh_s`` it
reads ``GET /v1/committee/members`` like any read (f+1 alike), and once that names an epoch newer than
the one its URLs belong to (the configured list: none), it checks that f'+1 of the new
committee's own APIs give the same answer and then uses them (and their f'). ``state_file``
keeps the learned committee across restarts.

Both speak HTTP through ``pot.api.http.HttpReplica`` (bounded pools, no leak on cancellation);
``transport=`` lets tests put an in-process ASGI app behind an ``ApiClient``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from pot.api import views
from pot.api.http import HttpError, HttpReplica, HttpResponse
from pot.protocol import codec
from pot.protocol import types as T
from pot.protocol.committee import max_faulty
from pot.protocol.types import Reason, Result

log = logging.getLogger(__name__)

class ApiError(RuntimeError):
    """A replica answered with an error, or did not answer."""

    def __init__(self, url: str, status: int | None, detail: str) -> None:
        super().__init__(f"{url}: {status or 'no answer'}: {detail}")
        self.url = url
        self.status = status
        self.detail = detail


class RateLimited(ApiError):
    """HTTP 429: the replica's admission limits; ``retry_after`` seconds before trying again."""

    def __init__(self, url: str, detail: str, retry_after: float) -> None:
        super().__init__(url, 429, detail)
        self.retry_after = retry_after


class NoQuorum(RuntimeError):
    """Fewer than f+1 replicas agreed on an answer."""


class UploadRefused(RuntimeError):
    """f+1 replicas refused an upload for the same reason (``status``: their HTTP status)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


#: an upload is done once this many replicas hold it: 2f+1, so f+1 honest ones keep it
def upload_quorum(f: int) -> int:
    return 2 * f + 1


#: the longest pause a 429's Retry-After is honoured for at once
MAX_RETRY_AFTER_S = 60.0


async def publish_for_order(send: Callable[[T.Signed, bytes], Any], uploader: str, order_id: int, cid: str,
                            data: bytes, domain: Any, key: bytes, *, wait_s: float) -> int:
    """Sign a ``ContentUpload`` of ``data`` for order ``order_id`` and hand it to ``send`` (an
    ``upload``/``publish`` coroutine function); returns how many replicas hold it. An order the
    ledger does not know yet (it enters a few blocks after placeOrder, 404) and a 429 are waited
    out for up to ``wait_s``; any other refusal raises ``UploadRefused``."""
    from pot.protocol.content import ContentUpload

    give_up = time.monotonic() + wait_s
    while True:
        # the replicas judge the expiry by their wall clocks, not by a test's offset clock
        upload = ContentUpload(uploader, order_id, cid, len(data), int(time.time()) + 600)
        try:
            return await send(upload.sign(domain, key), data)
        except UploadRefused as exc:
            if exc.status != 404 or time.monotonic() > give_up:
                raise
            await asyncio.sleep(1.0)
        except RateLimited as exc:
            if time.monotonic() + exc.retry_after > give_up:
                raise
            await asyncio.sleep(min(exc.retry_after, MAX_RETRY_AFTER_S))


def _result_of(body: dict[str, Any]) -> Result:
    try:
        return Result(bool(body["ok"]), int(body["code"]), str(body.get("text", "")))
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"not a submission result: {body!r}") from None


def _wire(message: T.Signed | bytes) -> bytes:
    return codec.encode(message) if isinstance(message, T.Signed) else bytes(message)


def _detail(resp: HttpResponse) -> str:
    """The ``detail`` of an error body, else its first bytes."""
    try:
        return str(json.loads(resp.body)["detail"])
    except (ValueError, KeyError, TypeError):
        return resp.body[:300].decode("utf-8", "replace")


def _retry_after(resp: HttpResponse) -> float:
    try:
        return max(0.0, float(resp.header("retry-after", "1")))
    except ValueError:
        return 1.0


class _TypedReads:
    """The API's reads as typed values, over whatever ``get_json`` a subclass provides
    (one replica for ApiClient, f+1 matching replicas for CommitteeClient)."""

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any | None:
        raise NotImplementedError

    async def orders(self, *, limit: int | None = None, phase: str | None = None) -> list[views.OrderView]:
        """Without ``phase``: FetchOrders (orders in training, best reward per second first)."""
        query = {"limit": limit, "phase": phase} if phase else {"limit": limit, "phase": "training", "sort": "reward"}
        doc = await self.get_json("/v1/orders", query)
        return [views.OrderView.from_json(o) for o in doc["orders"]]

    async def fetch_orders(self, limit: int | None = None) -> list[T.Order]:
        return [o.order for o in await self.orders(limit=limit)]

    async def order(self, order_id: int) -> dict[str, Any] | None:
        return await self.get_json(f"/v1/orders/{int(order_id)}")

    async def validations(self, order_id: int) -> list[T.ValidationReveal]:
        doc = await self.get_json(f"/v1/orders/{int(order_id)}/validations")
        return [] if doc is None else views.parse_validations(doc["validations"])

    async def model_link(self, mid: bytes) -> str | None:
        doc = await self.get_json(f"/v1/models/0x{bytes(mid).hex()}")
        return None if doc is None else doc["cid"]

    async def node(self, address: str) -> dict[str, Any] | None:
        return await self.get_json(f"/v1/nodes/{address}")

    async def pending_settlements(self) -> list[dict[str, Any]]:
        return (await self.get_json("/v1/settlements/pending"))["settlements"]

    async def settlement(self, nonce: int) -> dict[str, Any] | None:
        return await self.get_json(f"/v1/settlements/{int(nonce)}")

    async def outcome(self, order_id: int) -> dict[str, Any] | None:
        """How the order ended: winner, payouts, slashes, verdicts, every model's score, settlement."""
        return await self.get_json(f"/v1/orders/{int(order_id)}/outcome")

    async def account(self, address: str) -> dict[str, Any] | None:
        """Stake and roles, earned, pending and slashed, the orders the address took part in."""
        return await self.get_json(f"/v1/accounts/{address}")

    async def orders_page(self, **filters: Any) -> dict[str, Any]:
        """One page of ``GET /v1/orders`` with its filters (phase, status, client, miner, limit, cursor)."""
        return await self.get_json("/v1/orders", {k: v for k, v in filters.items() if v is not None})


class _AsgiReplica:
    """An in-process ASGI app as a replica (tests): httpx over ``transport``, nothing pooled."""

    busy = False

    def __init__(self, url: str, transport: httpx.AsyncBaseTransport) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, transport=transport)

    async def request(self, method: str, path: str, *, params=None, body: bytes | None = None,
                      headers=None, timeout: float = 10.0, wait_for_slot: bool = True) -> HttpResponse:
        try:
            resp = await self._http.request(method, path, params={k: v for k, v in (params or {}).items()
                                                                  if v is not None},
                                            content=body, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            raise HttpError(f"{self.url}: {type(exc).__name__}: {exc}") from None
        return HttpResponse(resp.status_code, resp.content, {k.lower(): v for k, v in resp.headers.items()})

    async def aclose(self) -> None:
        await self._http.aclose()


class ApiClient(_TypedReads):
    """One replica's API: at most ``max_connections`` sockets to it. ``transport`` lets tests pass
    an ASGI transport instead of a URL on the network."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None,
                 max_connections: int = 4) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.replica: HttpReplica | _AsgiReplica = (
            HttpReplica(self.base_url, max_connections=max_connections) if transport is None
            else _AsgiReplica(self.base_url, transport))

    async def aclose(self) -> None:
        await self.replica.aclose()

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # -- raw access (CommitteeClient compares these) ------------------------------------------

    async def _request(self, method: str, path: str, *, params=None, body: bytes | None = None,
                       headers=None, timeout: float | None = None) -> HttpResponse:
        try:
            return await self.replica.request(method, path, params=params, body=body, headers=headers,
                                              timeout=self.timeout if timeout is None else timeout)
        except HttpError as exc:
            raise ApiError(self.base_url + path, None, str(exc)) from None

    async def get_raw(self, path: str, params: dict[str, Any] | None = None) -> tuple[int, bytes]:
        """(status, body) of a GET; 404 is an answer like any other. ApiError when unreachable."""
        return read_answer(self.base_url + path, await self._request("GET", path, params=params))

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any | None:
        status, body = await self.get_raw(path, params)
        return None if status == 404 else json.loads(body)

    async def submit(self, message: T.Signed | bytes) -> Result:
        """POST the wire bytes; the ledger's Result (refusals too: they are answers, not errors).
        ``RateLimited`` on HTTP 429, ``ApiError`` when the replica gave no result."""
        resp = await self._request("POST", "/v1/messages", body=_wire(message), headers=_OCTETS)
        return submit_answer(self.base_url, resp)

    async def health(self) -> dict[str, Any]:
        return await self.get_json("/v1/health")

    async def info(self) -> dict[str, Any]:
        return await self.get_json("/v1/info")


_OCTETS = {"content-type": "application/octet-stream"}


def read_answer(url: str, resp: HttpResponse) -> tuple[int, bytes]:
    if resp.status not in (200, 404):
        raise ApiError(url, resp.status, resp.body[:500].decode("utf-8", "replace"))
    return resp.status, resp.body


def submit_answer(url: str, resp: HttpResponse) -> Result:
    text = resp.body[:500].decode("utf-8", "replace")
    if resp.status == 429:
        raise RateLimited(url, text, _retry_after(resp))
    try:
        return _result_of(json.loads(resp.body))
    except ValueError:
        raise ApiError(url + "/v1/messages", resp.status, text) from None


#: a submission is in the ledger: accepted now, or the same message was accepted before
_IN_LEDGER = (Reason.OK, Reason.REPLAY)
#: how long the slower replicas' requests may finish after a quorum (their connections are reused)
LINGER_S = 2.0
#: a replica that has not answered after this long is joined by the ones held in reserve
HEDGE_S = 0.5


#: seconds between two reads of GET /v1/committee/members (a committee change takes minutes)
REFRESH_S = 15.0


class CommitteeClient(_TypedReads):
    """BFT reads and submissions over all n replicas.

    ``f`` defaults to the largest f with 3f+1 <= n. A read returns as soon as f+1 bodies are
    identical and a submission as soon as f+1 replicas agree on its fate, so a slow, stopped or
    lying minority neither delays nor fools them. A replica that failed recently (refused,
    reset, timed out) is held in reserve, with a growing back-off, and asked only when the
    others do not make a quorum quickly.

    ``follow``: the client moves to a newer committee's APIs (``refresh_committee``), never on
    one replica's word. ``state_file``: where it keeps the committee it learned (a restart with
    the same configured ``urls`` starts from it instead of a list whose members may be gone).
    ``epoch``: the epoch ``urls`` are known to belong to; ``on_switch(urls)``: told of a switch.
    """

    def __init__(self, urls: Sequence[str] | Sequence[ApiClient], *, f: int | None = None,
                 timeout: float = 10.0, submit_timeout: float = 20.0, max_connections: int = 4,
                 follow: bool = True, state_file: str | os.PathLike | None = None,
                 refresh_s: float = REFRESH_S, epoch: int | None = None,
                 on_switch: Callable[[list[str]], Any] | None = None) -> None:
        if not urls:
            raise ValueError("CommitteeClient needs at least one replica URL")
        self.timeout = timeout
        self.submit_timeout = submit_timeout
        self.max_connections = max_connections
        self.follow = follow
        self.refresh_s = refresh_s
        self.state_file = None if state_file is None else os.fspath(state_file)
        #: the committee epoch ``clients`` belong to: None for a configured list (not known)
        self.epoch: int | None = epoch
        self.on_switch = on_switch
        self._configured = [u.base_url if isinstance(u, ApiClient) else str(u).rstrip("/") for u in urls]
        clients = [u if isinstance(u, ApiClient) else ApiClient(u, timeout=timeout, max_connections=max_connections)
                   for u in urls]
        self._use(clients, f)
        self._health: dict[ApiClient, list[float]] = {}  # client -> [failures, in reserve until]
        self._background: set[asyncio.Task] = set()
        self._retired: list[ApiClient] = []
        self._next_refresh = 0.0
        self._refreshing = False
        learned = self._load_state()
        if learned is not None:
            epoch, learned_urls, learned_f = learned
            self._retired += self.clients
            self._use([self._client(u) for u in learned_urls], learned_f)
            self.epoch = epoch

    def _use(self, clients: list[ApiClient], f: int | None) -> None:
        n = len(clients)
        f = max_faulty(n) if f is None else f
        if not 0 <= f or 2 * f + 1 > n:
            raise ValueError(f"f={f} needs at least {2 * f + 1} replicas, got {n}")
        self.clients, self.f = clients, f

    def _client(self, url: str) -> ApiClient:
        for c in self.clients:
            if c.base_url == url.rstrip("/"):
                return c
        return ApiClient(url, timeout=self.timeout, max_connections=self.max_connections)

    @property
    def urls(self) -> list[str]:
        """The replicas' URLs in use now."""
        return [c.base_url for c in self.clients]

    async def aclose(self) -> None:
        for t in list(self._background):
            t.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.gather(*(c.aclose() for c in {*self.clients, *self._retired}))

    def pool_usage(self) -> list[int]:
        """Open sockets to each replica (never above its ``max_connections``)."""
        return [getattr(c.replica, "open_connections", 0) for c in self.clients]

    # -- following the committee -----------------------------------------------------------

    def _load_state(self) -> tuple[int, list[str], int] | None:
        """The committee a previous run learned, if it was learned from this configured list
        (an operator who edits the list is obeyed)."""
        if self.state_file is None or not self.follow:
            return None
        try:
            with open(self.state_file) as fh:
                doc = json.load(fh)
            if doc.get("configured") != self._configured:
                log.info("%s was learned from other api_urls: starting from the configured ones", self.state_file)
                return None
            urls, f = [str(u) for u in doc["urls"]], int(doc["f"])
            if not urls or 2 * f + 1 > len(urls):
                raise ValueError("too few URLs for its f")
            return int(doc["epoch"]), urls, f
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the committee in %s (%s): starting from the configured api_urls",
                        self.state_file, exc)
            return None

    def _save_state(self) -> None:
        if self.state_file is None:
            return
        doc = {"configured": self._configured, "epoch": self.epoch, "urls": self.urls, "f": self.f}
        # a temporary file of its own: a worker's CLI commands share its state directory
        tmp = f"{self.state_file}.{os.getpid()}.{id(self)}.tmp"
        try:
            os.makedirs(os.path.dirname(self.state_file) or ".", exist_ok=True)
            with open(tmp, "w") as fh:
                json.dump(doc, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.state_file)
        except OSError as exc:  # the switch stands; only a restart would start from the old list
            log.warning("could not keep the committee in %s: %s", self.state_file, exc)

    async def refresh_committee(self) -> bool:
        """Read ``GET /v1/committee/members`` from f+1 of the replicas in use alike; if it names an epoch
        newer than the one they belong to, and f'+1 of that committee's own APIs (it has f' and
        at least 2f'+1 known URLs) answer the same, switch to them. True when it switched."""
        self._next_refresh = time.monotonic() + self.refresh_s
        status, body = await self._read_raw("/v1/committee/members")
        if status == 404:
            return False  # an aggregator from before committee changes: nothing to follow
        doc = json.loads(body)
        epoch = int(doc["epoch"])
        if self.epoch is not None and epoch <= self.epoch:
            return False
        urls = [str(m["apiUrl"]).rstrip("/") for m in doc["members"] if m.get("apiUrl")]
        f = int(doc["f"])
        if not 0 <= f or len(urls) < 2 * f + 1:
            log.warning("committee epoch %d lists %d API URLs for f = %d: keeping %s", epoch, len(urls), f,
                        self.urls)
            return False
        new = [self._client(u) for u in urls]
        fresh = [c for c in new if c not in self.clients]
        if fresh:
            # the new committee's own APIs must serve it: reachable from here, and f'+1 alike
            probe = CommitteeClient(new, f=f, timeout=self.timeout, follow=False)
            try:
                answer = await probe._read_raw("/v1/committee/members")
            except NoQuorum:
                answer = None
            finally:
                for t in list(probe._background):
                    t.cancel()
                await asyncio.gather(*probe._background, return_exceptions=True)
            if answer != (status, body):
                await asyncio.gather(*(c.aclose() for c in fresh))
                raise NoQuorum(f"committee epoch {epoch}: its members' APIs do not serve it alike (yet)")
        old = self.clients
        self._use(new, f)
        self._retired += [c for c in old if c not in self.clients]
        switched, self.epoch = self.epoch, epoch
        self._save_state()
        if switched is not None or sorted(c.base_url for c in old) != sorted(urls):
            log.info("committee epoch %d: now using its %d members' APIs (f = %d)", epoch, len(urls), f)
            if self.on_switch is not None:
                self.on_switch(self.urls)
        return True

    async def _maybe_refresh(self) -> None:
        if not self.follow or self._refreshing or time.monotonic() < self._next_refresh:
            return
        self._refreshing = True
        try:
            await self.refresh_committee()
        except Exception as exc:  # noqa: BLE001 - the old list stays in use; retried later
            self._next_refresh = time.monotonic() + min(self.refresh_s, 5.0)
            log.debug("committee refresh failed: %s", exc)
        finally:
            self._refreshing = False

    # -- health --------------------------------------------------------------------------------

    def _ok(self, c: ApiClient) -> None:
        self._health.pop(c, None)

    def _failed(self, c: ApiClient) -> None:
        h = self._health.setdefault(c, [0, 0.0])
        h[0] += 1
        h[1] = time.monotonic() + min(5.0, 0.25 * 2 ** h[0])

    def _record(self, c: ApiClient, task: asyncio.Task) -> HttpResponse | Exception:
        if task.cancelled():
            self._failed(c)  # stalled past the linger time
            return HttpError("stalled")
        exc = task.exception()
        if exc is None:
            self._ok(c)
            return task.result()
        self._failed(c)
        return exc

    # -- the quorum loop -----------------------------------------------------------------------

    async def _ask(self, method: str, path: str, decide: Callable[[list[tuple[ApiClient, Any]], bool], Any], *,
                   params: dict[str, Any] | None = None, body: bytes | None = None,
                   headers: dict[str, str] | None = None, timeout: float) -> Any:
        """Ask replicas until ``decide(answers, final)`` returns non-None; ``final`` once nobody is
        left to answer (or the deadline passed), when it must return or raise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        now = time.monotonic()
        clients = list(self.clients)  # a committee switch meanwhile does not move this request
        first = [c for c in clients if self._health.get(c, (0, 0.0))[1] <= now and not c.replica.busy]
        reserve = [c for c in clients if c not in first]
        answers: list[tuple[ApiClient, HttpResponse | Exception]] = []
        pending: dict[asyncio.Task, ApiClient] = {}

        def start(c: ApiClient) -> None:
            task = asyncio.ensure_future(c.replica.request(
                method, path, params=params, body=body, headers=headers,
                timeout=max(0.0, deadline - loop.time())))
            pending[task] = c

        for c in first:
            start(c)
        hedge_at = loop.time() + HEDGE_S
        try:
            while True:
                verdict = decide(answers, False)
                if verdict is not None:
                    return verdict
                if reserve and (not pending or loop.time() >= hedge_at):
                    for c in reserve:
                        start(c)
                    reserve = []
                if not pending or loop.time() >= deadline:
                    return decide(answers, True)
                wake = deadline if not reserve else min(deadline, hedge_at)
                done, _ = await asyncio.wait(pending, timeout=max(0.0, wake - loop.time()),
                                             return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    c = pending.pop(task)
                    answers.append((c, self._record(c, task)))
        finally:
            for task, c in pending.items():
                self._linger(task, c)

    def _linger(self, task: asyncio.Task, c: ApiClient) -> None:
        """Let a slower replica's request finish for ``LINGER_S`` (its connection is reused), then
        abort it; either way its health is recorded. Never more than max_connections per replica."""
        waiting = getattr(c.replica, "waiting", None)
        if waiting is not None and waiting(task):
            task.cancel()  # still queued for a connection: nothing reached the replica
            return
        self._background.add(task)
        handle = asyncio.get_running_loop().call_later(LINGER_S, task.cancel)

        def finished(t: asyncio.Task) -> None:
            handle.cancel()
            self._background.discard(t)
            self._record(c, t)
        task.add_done_callback(finished)

    # -- reads ---------------------------------------------------------------------------------

    async def read_raw(self, path: str, params: dict[str, Any] | None = None) -> tuple[int, bytes]:
        await self._maybe_refresh()
        return await self._read_raw(path, params)

    async def _read_raw(self, path: str, params: dict[str, Any] | None = None) -> tuple[int, bytes]:
        need = self.f + 1

        def decide(answers: list[tuple[ApiClient, Any]], final: bool) -> tuple[int, bytes] | None:
            tally: dict[tuple[int, bytes], int] = {}
            errors = []
            for c, a in answers:
                try:
                    if isinstance(a, Exception):
                        raise a
                    key = read_answer(c.base_url + path, a)
                except (HttpError, ApiError) as exc:
                    errors.append(str(exc))
                    continue
                tally[key] = tally.get(key, 0) + 1
                if tally[key] >= need:
                    return key
            if not final:
                return None
            counts = sorted(tally.values(), reverse=True)
            raise NoQuorum(f"GET {path}: no answer from {need} replicas alike (groups {counts}, "
                           f"errors {errors[:3]}); replicas may be at different ledger heights, retry")

        return await self._ask("GET", path, decide, params=params, timeout=self.timeout)

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any | None:
        status, body = await self.read_raw(path, params)
        return None if status == 404 else json.loads(body)

    # -- submissions ---------------------------------------------------------------------------

    async def submit(self, message: T.Signed | bytes) -> Result:
        """Send to every replica at once; done when f+1 say the message is in the ledger (the
        first copy ordered is accepted, later copies are replays) or f+1 refuse it for the same
        reason. If the deadline comes first: accepted if any replica accepted it, else the refusal
        most replicas gave; ``RateLimited`` when every replica asked us to slow down.
        One replica's OK is not a BFT proof: read the order back when it matters."""
        await self._maybe_refresh()
        need = self.f + 1
        raw = _wire(message)

        def decide(answers: list[tuple[ApiClient, Any]], final: bool) -> Result | None:
            results: list[Result] = []
            errors: list[Exception] = []
            for c, a in answers:
                try:
                    if isinstance(a, Exception):
                        raise a
                    results.append(submit_answer(c.base_url, a))
                except (HttpError, ApiError) as exc:
                    errors.append(exc)
            inside = [r for r in results if r.reason_enum in _IN_LEDGER]
            by_reason: dict[int, list[Result]] = {}
            for r in results:
                if r.reason_enum not in _IN_LEDGER:
                    by_reason.setdefault(r.reason, []).append(r)
            ok = [r for r in inside if r.ok]
            if len(inside) >= need:
                return (ok or inside)[0]
            for group in by_reason.values():
                if len(group) >= need:
                    return group[0]
            if not final:
                return None
            if inside:
                return (ok or inside)[0]
            if by_reason:
                return max(by_reason.values(), key=len)[0]
            limited = [e for e in errors if isinstance(e, RateLimited)]
            if limited and len(limited) == len(errors):
                raise RateLimited("committee", f"every replica is rate-limiting this sender: {limited[0].detail}",
                                  max(e.retry_after for e in limited))
            raise ApiError("committee", None, f"no replica took the message: {[str(e) for e in errors[:4]]}")

        return await self._ask("POST", "/v1/messages", decide, body=raw, headers=_OCTETS,
                               timeout=self.submit_timeout)

    # -- content -------------------------------------------------------------------------------

    async def upload(self, signed: T.Signed, data: bytes, *, timeout: float | None = None) -> int:
        """PUT ``data`` with its signed ``ContentUpload`` to every replica; done once 2f+1 hold it
        (returns how many do). ``UploadRefused`` when f+1 refuse it alike (not in the ledger yet,
        not allowed, over quota: their words), ``RateLimited`` when they ask to slow down,
        ``NoQuorum`` when too few answered."""
        await self._maybe_refresh()
        need, cid = upload_quorum(self.f), signed.message.cid
        headers = {**signed.message.headers(signed.signature), "content-type": "application/octet-stream"}
        timeout = timeout if timeout is not None else self.submit_timeout + len(data) / (1 << 20)

        def decide(answers: list[tuple[ApiClient, Any]], final: bool) -> int | None:
            held, refusals, errors = 0, {}, []
            for _c, a in answers:
                if isinstance(a, Exception):
                    errors.append(str(a))
                elif a.status in (200, 201):
                    held += 1
                elif a.status == 429:
                    refusals.setdefault(429, []).append(a)
                else:
                    refusals.setdefault(a.status, []).append(a)
            if held >= need:
                return held
            for status, group in refusals.items():
                if len(group) >= self.f + 1:
                    detail = _detail(group[0])
                    if status == 429:
                        raise RateLimited("committee", detail, _retry_after(group[0]))
                    raise UploadRefused(status, detail)
            if not final:
                return None
            raise NoQuorum(f"upload of {cid}: {held} of {need} replicas needed hold it "
                           f"({[_detail(g[0]) for g in refusals.values()][:2] + errors[:2]})")

        return await self._ask("PUT", f"/v1/content/{cid}", decide, body=data, headers=headers, timeout=timeout)


def read_quorum_sync(urls: Sequence[str], path: str, *, f: int | None = None, timeout: float = 10.0) -> bytes | None:
    """A blocking BFT read for start-up, before any event loop runs: the body f+1 replicas give
    alike (None: f+1 say 404). ``NoQuorum`` when they do not agree or do not answer."""
    f = max_faulty(len(urls)) if f is None else f
    tally: dict[tuple[int, bytes], int] = {}
    errors = []
    with httpx.Client(timeout=timeout) as http:
        for url in urls:
            try:
                resp = http.get(url.rstrip("/") + path)
            except httpx.HTTPError as exc:
                errors.append(f"{url}: {type(exc).__name__}")
                continue
            if resp.status_code not in (200, 404):
                errors.append(f"{url}: HTTP {resp.status_code}")
                continue
            key = (resp.status_code, resp.content)
            tally[key] = tally.get(key, 0) + 1
            if tally[key] >= f + 1:
                return None if key[0] == 404 else key[1]
    raise NoQuorum(f"GET {path}: no {f + 1} of {len(urls)} replicas answered alike ({'; '.join(errors[:4]) or 'they differ'})")
