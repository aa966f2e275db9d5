"""Remote backends that hand us file bytes, not blocks: a Kubo RPC node and an HTTP gateway.

Neither is trusted. The bytes they return are re-imported locally with the same code as the
embedded store and must give back the CID we asked for; until the stream ends the bytes are
unverified, which is why :meth:`ContentStore.get` and :meth:`ContentStore.fetch` (which only
return or rename into place after the check) are the calls to use.

Only content imported with ``ipfs add``'s default chunker and balanced layout verifies: CIDv1
with raw leaves or CIDv0. A file added with other options is refused as not matching its CID.

Neither is trusted with our resources either: an error reply is read up to MAX_ERROR_BODY bytes
(an endless 500 once made a ``--max-size 1M`` fetch read 1.5 GB), and every fetch has a total
deadline, checked at every piece that arrives (a peer that trickles one byte every two seconds
never times out a read), with each read's own timeout cut to what is left of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator

import httpx

from .base import DEFAULT_MAX_SIZE, ContentStore
from .cid import CID, RAW
from .errors import CorruptObject, DeadlineExceeded, InvalidCid, NotFound, StorageError, TooLarge
from .unixfs import Importer

#: Most bytes read of a non-200 reply: enough for any error message, not for a stream of them.
MAX_ERROR_BODY = 64 * 1024
#: Most bytes read of a control command's 200 reply (add, stat, pin ls, dag import).
MAX_REPLY_BODY = 64 * 1024 * 1024


def read_capped(resp: httpx.Response, limit: int = MAX_ERROR_BODY, *, strict: bool = False) -> bytes:
    """At most ``limit`` bytes of a streamed response's body; the rest is never read. ``strict``:
    a longer body is an error, not a truncated one (and a broken one too)."""
    buf = bytearray()
    try:
        for chunk in resp.iter_bytes():
            buf += chunk[:limit + 1 - len(buf)]
            if len(buf) > limit:
                if strict:
                    raise StorageError(f"reply from {resp.request.url.host} is over {limit} bytes")
                del buf[limit:]
                break
    except httpx.HTTPError:
        if strict:
            raise
    return bytes(buf)


def _timed(pieces: Iterator[bytes], cid: str, seconds: float, until: float) -> Iterator[bytes]:
    for piece in pieces:
        if time.monotonic() > until:
            raise DeadlineExceeded(cid, seconds)
        yield piece


def verify_stream(cid: CID, pieces: Iterable[bytes], max_size: int) -> Iterator[bytes]:
    """Pass ``pieces`` through, bounded by ``max_size``; raise at the end unless they hash to ``cid``."""
    # A raw CID names one block whatever its size (``ipfs block put``); anything else is a UnixFS
    # import, re-done here with the embedded store's importer.
    digest = hashlib.sha256() if cid.codec == RAW else None
    imp = None if digest else Importer(cid.version)
    seen = 0
    for piece in pieces:
        seen += len(piece)
        if seen > max_size:
            raise TooLarge(str(cid), None, max_size)
        if digest:
            digest.update(piece)
        else:
            imp.update(piece)
        yield piece
    ok = digest.digest() == cid.digest if digest else imp.finish() == cid
    if not ok:
        raise CorruptObject(str(cid), "received bytes do not hash to this CID (tampered, truncated, "
                                      "or imported with a non-default chunker/layout)")


class _RemoteStore(ContentStore):
    def __init__(self, base_url: str, *, max_size: int, timeout: float,
                 client: httpx.Client | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_size = max_size
        self.timeout = timeout
        self._own_client = client is None
        self.client = client or httpx.Client(timeout=httpx.Timeout(timeout, connect=5.0))

    def _request_timeout(self, until: float) -> httpx.Timeout:
        """Each read waits at most what is left of the fetch's deadline (and the usual timeout)."""
        left = max(0.001, until - time.monotonic())
        return httpx.Timeout(min(self.timeout, left), connect=min(5.0, left))

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"


class KuboStore(_RemoteStore):
    """A client of the Kubo RPC API (``http://127.0.0.1:5001`` by default; js-ipfs speaks it too)."""

    def __init__(self, api_url: str = "http://127.0.0.1:5001", *, max_size: int = DEFAULT_MAX_SIZE,
                 timeout: float = 60.0, find_timeout: float = 30.0,
                 client: httpx.Client | None = None) -> None:
        super().__init__(api_url, max_size=max_size, timeout=timeout, client=client)
        # A node looks for blocks it lacks until told to stop (js-ipfs offline: forever); the
        # node-side timeout turns "nobody has it" into an answer instead of a hung reader.
        self.find_timeout = find_timeout

    def _url(self, command: str) -> str:
        return f"{self.base_url}/api/v0/{command}"

    @staticmethod
    def _error(resp: httpx.Response, cid: str | None = None) -> StorageError:
        body = read_capped(resp).decode(errors="replace")
        try:
            message = json.loads(body).get("Message", body)
        except (ValueError, AttributeError):
            message = body
        low = message.lower()
        if cid and any(w in low for w in ("not found", "no link", "could not find", "timeout",
                                          "timed out", "aborted")):
            return NotFound(cid, f"node: {message.strip()}")
        return StorageError(f"IPFS node answered {resp.status_code}: {message.strip()[:500]}")

    def _post(self, command: str, cid: str | None = None, **params) -> bytes:
        """A control command's reply body (at most MAX_REPLY_BODY bytes; an error's, MAX_ERROR_BODY)."""
        try:
            with self.client.stream("POST", self._url(command), params=params) as resp:
                if resp.status_code != 200:
                    raise self._error(resp, cid)
                return read_capped(resp, MAX_REPLY_BODY, strict=True)
        except httpx.HTTPError as exc:
            raise StorageError(f"IPFS node at {self.base_url} unreachable: {exc}") from exc

    def add_stream(self, chunks: Iterable[bytes], *, cid_version: int = 1, pin: bool = True) -> str:
        # The CID is computed here as the bytes go out; the node's answer must match it, so a node
        # with other import settings cannot silently give a file a CID the embedded store disagrees with.
        local = Importer(cid_version)
        boundary = uuid.uuid4().hex
        max_size = self.max_size

        def body() -> Iterator[bytes]:
            yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"file\"\r\n"
                   f"Content-Type: application/octet-stream\r\n\r\n").encode()
            for chunk in chunks:
                local.update(chunk)
                if local.size > max_size:
                    raise TooLarge("<upload>", local.size, max_size)
                yield bytes(chunk)
            yield f"\r\n--{boundary}--\r\n".encode()

        params = {"cid-version": str(cid_version), "raw-leaves": str(cid_version == 1).lower(),
                  "chunker": "size-262144", "pin": str(pin).lower(), "progress": "false"}
        if cid_version == 1:
            params["cid-base"] = "base32"  # js-ipfs would answer in base58btc
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        try:
            with self.client.stream("POST", self._url("add"), params=params, content=body(),
                                     headers=headers) as resp:
                if resp.status_code != 200:
                    raise self._error(resp)
                lines = [line for line in read_capped(resp, MAX_REPLY_BODY, strict=True).splitlines()
                         if line.strip()]
        except httpx.HTTPError as exc:
            raise StorageError(f"IPFS node at {self.base_url}: add failed: {exc}") from exc
        if not lines:
            raise StorageError("IPFS node answered add with an empty body")
        last = json.loads(lines[-1])  # NDJSON; the last line is the root
        if "Hash" not in last:
            raise StorageError(f"IPFS node add failed: {last.get('Message', last)}")
        expected = str(local.finish())
        try:
            same = CID.parse(last["Hash"]) == CID.parse(expected)
        except InvalidCid:
            same = False
        if not same:
            raise CorruptObject(last["Hash"], f"node returned this CID, local import gives {expected}; "
                                              "the node uses other import settings")
        return expected

    def stream(self, cid: str, *, max_size: int | None = None, deadline: float | None = None) -> Iterator[bytes]:
        parsed = CID.parse(cid)
        limit = self._limit(max_size)
        seconds, until = self._until(limit, deadline)
        return verify_stream(parsed, _timed(self._cat(str(parsed), limit, until), str(parsed), seconds, until), limit)

    def _cat(self, cid: str, limit: int, until: float) -> Iterator[bytes]:
        # length=limit+1 so the node itself stops after one byte too many.
        params = {"arg": cid, "length": str(limit + 1), "timeout": f"{self.find_timeout:g}s"}
        try:
            with self.client.stream("POST", self._url("cat"), params=params,
                                    timeout=self._request_timeout(until)) as resp:
                if resp.status_code != 200:
                    raise self._error(resp, cid)
                yield from resp.iter_bytes()
                # Kubo reports errors after a 200 in a trailer header.
                trailer = resp.headers.get("X-Stream-Error")
                if trailer:
                    raise StorageError(f"IPFS node: cat {cid} failed mid-stream: {trailer}")
        except httpx.HTTPError as exc:
            raise StorageError(f"IPFS node at {self.base_url}: cat {cid} failed: {exc}") from exc

    def has(self, cid: str) -> bool:
        parsed = CID.parse(cid)
        try:
            with self.client.stream("POST", self._url("block/stat"),
                                    params={"arg": str(parsed), "offline": "true", "timeout": "2s"}) as resp:
                return resp.status_code == 200
        except httpx.HTTPError as exc:
            raise StorageError(f"IPFS node at {self.base_url} unreachable: {exc}") from exc

    def size(self, cid: str) -> int:
        parsed = CID.parse(cid)
        body = self._post("files/stat", str(parsed), arg=f"/ipfs/{parsed}", timeout=f"{self.find_timeout:g}s")
        try:
            return int(json.loads(body)["Size"])
        except (ValueError, KeyError, TypeError):
            raise StorageError(f"IPFS node gave no size for {parsed}: {body[:200]!r}") from None

    def pin(self, cid: str) -> None:
        parsed = CID.parse(cid)
        self._post("pin/add", str(parsed), arg=str(parsed), timeout=f"{self.find_timeout:g}s")

    def pins(self) -> list[str]:
        text = self._post("pin/ls", type="recursive").decode(errors="replace").strip()
        keys: dict = {}
        for line in text.splitlines():  # js-ipfs streams NDJSON, Kubo one JSON object
            obj = json.loads(line)
            if "Keys" in obj:
                keys.update(obj["Keys"])
            elif "Cid" in obj:
                keys[obj["Cid"]] = obj
        return sorted({str(CID.parse(k)) for k in keys})

    def dag_import(self, car_path: str | os.PathLike) -> list[str]:
        """``ipfs dag import`` a CAR file; return the roots the node reports."""
        with open(car_path, "rb") as f:
            try:
                with self.client.stream("POST", self._url("dag/import"), params={"pin-roots": "true"},
                                        files={"file": ("file.car", f, "application/vnd.ipld.car")}) as resp:
                    if resp.status_code != 200:
                        raise self._error(resp)
                    body = read_capped(resp, MAX_REPLY_BODY, strict=True)
            except httpx.HTTPError as exc:
                raise StorageError(f"IPFS node at {self.base_url}: dag import failed: {exc}") from exc
        roots = []
        for line in body.decode(errors="replace").splitlines():
            if line.strip():
                obj = json.loads(line)
                root = obj.get("Root") or {}
                if root.get("Cid"):
                    roots.append(root["Cid"]["/"] if isinstance(root["Cid"], dict) else root["Cid"])
        return roots


class HttpGatewayStore(_RemoteStore):
    """Read-only client of an IPFS HTTP gateway (``GET /ipfs/<cid>``): a peer's ``pot storage
    serve``, a js-ipfs/Kubo gateway, or a public one. Fetched bytes are verified like Kubo's."""

    def __init__(self, gateway_url: str, *, max_size: int = DEFAULT_MAX_SIZE, timeout: float = 60.0,
                 client: httpx.Client | None = None) -> None:
        super().__init__(gateway_url, max_size=max_size, timeout=timeout, client=client)

    def _get(self, cid: str, limit: int, until: float) -> Iterator[bytes]:
        try:
            with self.client.stream("GET", f"{self.base_url}/ipfs/{cid}",
                                    timeout=self._request_timeout(until)) as resp:
                if resp.status_code == 404:
                    raise NotFound(cid, f"gateway {self.base_url}")
                if resp.status_code == 413:
                    raise TooLarge(cid, None, limit)
                if resp.status_code != 200:
                    raise StorageError(f"gateway answered {resp.status_code} for {cid}: "
                                       f"{read_capped(resp, 300).decode(errors='replace')}")
                declared = resp.headers.get("Content-Length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    raise TooLarge(cid, int(declared), limit)
                yield from resp.iter_bytes()
        except httpx.HTTPError as exc:
            raise StorageError(f"gateway {self.base_url}: fetching {cid} failed: {exc}") from exc

    def stream(self, cid: str, *, max_size: int | None = None, deadline: float | None = None) -> Iterator[bytes]:
        parsed = CID.parse(cid)
        limit = self._limit(max_size)
        seconds, until = self._until(limit, deadline)
        return verify_stream(parsed, _timed(self._get(str(parsed), limit, until), str(parsed), seconds, until), limit)

    def has(self, cid: str) -> bool:
        parsed = CID.parse(cid)
        try:
            resp = self.client.head(f"{self.base_url}/ipfs/{parsed}")
        except httpx.HTTPError as exc:
            raise StorageError(f"gateway {self.base_url} unreachable: {exc}") from exc
        return resp.status_code == 200

    def size(self, cid: str) -> int:
        parsed = CID.parse(cid)
        resp = self.client.head(f"{self.base_url}/ipfs/{parsed}")
        if resp.status_code == 404:
            raise NotFound(str(parsed), f"gateway {self.base_url}")
        length = resp.headers.get("Content-Length")
        if resp.status_code != 200 or length is None:
            raise StorageError(f"gateway gave no size for {parsed} ({resp.status_code})")
        return int(length)

    def add_stream(self, chunks: Iterable[bytes], *, cid_version: int = 1, pin: bool = True) -> str:
        raise StorageError("an HTTP gateway is read-only; add to an EmbeddedStore or a Kubo node")

    def pin(self, cid: str) -> None:
        raise StorageError("an HTTP gateway is read-only; pin on the node that serves it")


__all__ = ["KuboStore", "HttpGatewayStore", "verify_stream", "InvalidCid"]
