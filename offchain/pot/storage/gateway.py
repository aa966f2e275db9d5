"""A small read-only IPFS gateway over an :class:`EmbeddedStore`: how a miner keeps its models
available to validators without running an IPFS node.

Processes on one machine can simply share the store directory (writes are atomic renames); for
other machines, ``pot storage serve`` exposes the subset of the IPFS path gateway that readers
need, on the standard paths, so a reader's :class:`HttpGatewayStore` works against this server,
a Kubo or js-ipfs gateway alike:

- ``GET|HEAD /ipfs/<cid>``: the file (Content-Length is the size the root declares);
- ``GET /ipfs/<cid>?format=raw``: one block (what trustless gateways serve);
- ``GET /ipfs/<cid>?format=car``: the whole DAG as a CAR v1.

The server re-hashes every block it sends, so a corrupt disk yields an error, not bad bytes; the
reader still verifies, because it trusts no server. Standard library only (``http.server``).

Errors are answered before the 200 whenever they can be: a CAR is walked and verified once before
its headers go out (its exact Content-Length comes from that walk), so a corrupt block is a 500,
not a 500 written inside a 200 body. A failure after the headers (the disk changed since) cuts
the connection short of the announced length, which every HTTP client reports. Walks are bounded
(see ``unixfs.max_visits`` and the fetch deadline) and stop as soon as the client has gone.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .base import default_deadline
from .car import encode_header, write_car
from .cid import CID, encode_varint
from .embedded import EmbeddedStore
from .errors import CorruptObject, DeadlineExceeded, InvalidCid, NotFound, StorageError, TooLarge, Unsupported
from .unixfs import WalkLimits, get_verified_block, iter_blocks

log = logging.getLogger("pot.storage.gateway")


class ClientGone(StorageError):
    """The client closed its connection: whatever was being read for it is abandoned."""


class _Handler(BaseHTTPRequestHandler):
    server: GatewayServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def do_GET(self) -> None:
        self._handle(head=False)

    def _send_error(self, code: int, message: str) -> None:
        body = (message + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _check_client(self) -> None:
        """Raise ClientGone when the peer closed its side (readable and at EOF): a walk that
        writes nothing for a while would not notice otherwise."""
        sock = self.connection
        try:
            if select.select([sock], [], [], 0)[0] and not sock.recv(1, socket.MSG_PEEK):
                raise ClientGone("client went away")
        except (OSError, ValueError):
            raise ClientGone("client went away") from None

    def _walk_limits(self, size: int) -> WalkLimits:
        return WalkLimits(default_deadline(size), self._check_client)

    def _car_length(self, cid: CID) -> int:
        """Walk and verify the whole DAG before answering; the CAR's exact length."""
        store = self.server.store
        length = len(encode_header([cid]))
        total = 0
        for c, block in iter_blocks(store.get_block, cid, self._walk_limits(store.max_size)):
            n = len(c.to_bytes()) + len(block)
            length += len(encode_varint(n)) + n
            total += len(block)
            if total > store.max_size:
                raise TooLarge(str(cid), None, store.max_size)
        return length

    def _handle(self, head: bool) -> None:
        store = self.server.store
        url = urlsplit(self.path)
        if not url.path.startswith("/ipfs/"):
            return self._send_error(404, "only /ipfs/<cid> is served")
        fmt = parse_qs(url.query).get("format", [""])[0]
        try:
            cid = CID.parse(url.path[len("/ipfs/"):].strip("/"))
            if fmt == "raw":
                body = get_verified_block(store.get_block, cid)
                return self._send_body(body, "application/vnd.ipld.raw", head)
            if fmt == "car":
                length = self._car_length(cid)
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.ipld.car; version=1")
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if not head:
                    try:
                        write_car(self.wfile, [cid], iter_blocks(store.get_block, cid,
                                                                 self._walk_limits(store.max_size)))
                    except StorageError as exc:
                        log.error("aborted sending the CAR of %s: %s", cid, exc)
                        self.close_connection = True
                return None
            if fmt:
                return self._send_error(400, f"unsupported format {fmt!r} (raw, car or none)")
            size = store.size(str(cid))
            if size > store.max_size:
                raise TooLarge(str(cid), size, store.max_size)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("Etag", f'"{cid}"')
            self.send_header("Cache-Control", "public, max-age=29030400, immutable")
            self.end_headers()
            if not head:
                try:
                    for piece in store.stream(str(cid), deadline=default_deadline(size), check=self._check_client):
                        self.wfile.write(piece)
                except StorageError as exc:
                    # Headers are gone; cutting the connection short is the only signal left, and
                    # the reader's own verification catches the truncated body.
                    log.error("aborted sending %s: %s", cid, exc)
                    self.close_connection = True
            return None
        except InvalidCid as exc:
            return self._send_error(400, str(exc))
        except NotFound as exc:
            return self._send_error(404, str(exc))
        except TooLarge as exc:
            return self._send_error(413, str(exc))
        except Unsupported as exc:
            return self._send_error(501, str(exc))
        except CorruptObject as exc:
            log.error("%s", exc)
            return self._send_error(500, str(exc))
        except DeadlineExceeded as exc:
            return self._send_error(504, str(exc))
        except ClientGone:
            log.debug("client went away before %s was answered", self.path)
            self.close_connection = True
            return None
        except (BrokenPipeError, ConnectionResetError):
            return None

    def _send_body(self, body: bytes, ctype: str, head: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


class GatewayServer(ThreadingHTTPServer):
    """``with GatewayServer(store, ("127.0.0.1", 0)) as srv: srv.url`` serves in a thread."""

    daemon_threads = True

    def __init__(self, store: EmbeddedStore, address: tuple[str, int] = ("127.0.0.1", 8080)) -> None:
        self.store = store
        super().__init__(address, _Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> GatewayServer:
        self._thread = threading.Thread(target=self.serve_forever, name="pot-gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread:
            self._thread.join(5)

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
