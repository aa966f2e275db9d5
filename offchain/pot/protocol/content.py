"""Content the protocol references, uploaded to the committee: who may, for which order, how much.

A miner on one machine and a validator on another share no directory: the model a miner reveals,
the spec and training data a client orders with and the test set it releases must be fetchable
by everyone with only the network's URLs. Each committee replica therefore accepts uploads of
that content and serves it back (read by CID, verified by every reader), under these rules:

- an upload is a ``ContentUpload`` signed by the uploader (EIP-712, the participants' domain: bound
  to the chain and the OrderBook), naming the order, the CID, the exact size and an expiry, so a
  stranger can neither upload in someone's name nor replay a stale request later;
- only the order's client (while the order is in its cycle: spec, training data, test set,
  initial weights) or a miner holding a claim in it (its model) may upload for an order: the
  escrowed reward or the claim's stake is what the disk space is charged to;
- sizes and a per-account quota bound what one account may keep on a replica.

A replica keeps what it took until the order settled plus a retention period, and the winning
model longer (its client fetches it after the settlement). These checks are pure functions of the
ledger's state; ``pot.api.content`` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pot.protocol import types as T

#: statuses of an order still in its cycle, when uploads for it are taken
OPEN_STATUSES = ("open", "verifying", "settling")
#: the longest an upload request may be valid for, from the replica's clock
MAX_UPLOAD_VALIDITY_S = 3600


@dataclass(frozen=True)
class ContentUpload(T.Message):
    """A participant asks the committee to keep ``size`` bytes of content ``cid`` for order ``orderId``."""
    uploader: str
    order_id: int
    cid: str
    size: int
    expires: int
    TAG: ClassVar[int] = 0x30
    SIGNER: ClassVar[str] = "uploader"
    FIELDS: ClassVar = (("uploader", "uploader", "address"), ("order_id", "orderId", "uint"),
                        ("cid", "cid", "string"), ("size", "size", "uint"), ("expires", "expires", "uint"))

    def headers(self, signature: bytes) -> dict[str, str]:
        """The request as HTTP headers (the body is the content itself)."""
        return {"x-pot-uploader": self.uploader, "x-pot-order": str(self.order_id), "x-pot-size": str(self.size),
                "x-pot-expires": str(self.expires), "x-pot-signature": "0x" + signature.hex()}

    @classmethod
    def from_headers(cls, cid: str, headers: Any) -> T.Signed:
        """The signed request of an upload of ``cid`` (ValueError when a header is missing or malformed)."""
        try:
            msg = cls(headers["x-pot-uploader"], int(headers["x-pot-order"]), cid, int(headers["x-pot-size"]),
                      int(headers["x-pot-expires"]))
            sig = bytes.fromhex(headers["x-pot-signature"].removeprefix("0x"))
        except KeyError as exc:
            raise ValueError(f"missing header {exc.args[0]}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed upload request: {exc}") from None
        return T.Signed(msg, sig)


def may_upload(order_status: str | None, client: str | None, claimers: list[str], staked_roles: int,
               upload: ContentUpload, now: int) -> str | None:
    """Why the upload is refused (None: it is taken). ``order_status``/``client``/``claimers``: the
    ledger's record of the order (None: unknown); ``staked_roles``: the uploader's roles in the ledger."""
    if upload.expires < now:
        return f"the upload request expired at {upload.expires} (now {now}): sign a fresh one"
    if upload.expires > now + MAX_UPLOAD_VALIDITY_S:
        return f"the upload request is valid for more than {MAX_UPLOAD_VALIDITY_S} s"
    if order_status is None:
        return f"order {upload.order_id} is not in the ledger (yet: it enters a few blocks after placeOrder)"
    if order_status not in OPEN_STATUSES:
        return f"order {upload.order_id} is {order_status}: it takes no more content"
    me = upload.uploader.lower()
    if client is not None and client.lower() == me:
        return None
    if any(m.lower() == me for m in claimers) and staked_roles & T.MINER:
        return None
    return (f"{upload.uploader} may not upload for order {upload.order_id}: only its client, or a staked miner "
            "with a claim in it")
