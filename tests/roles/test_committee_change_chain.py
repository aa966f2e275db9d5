"""A committee change the ledger decided goes on chain through the aggregator's own code
(``Settler`` submits ``executeAction`` with the ledger's k signatures, the next member taking over
when the one whose turn it is does not), and the chain's ``EpochChanged`` comes back through two
members' ``Attester`` (f + 1 attestations) to confirm it in the ledger (docs/COMMITTEE.md)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from eth_account import Account
from eth_utils import keccak

from pot.chain.sender import Sender
from pot.ledger import Ledger, LedgerConfig
from pot.pbft.crypto import public_key
from pot.protocol import codec
from pot.protocol.epoch import Joining, make_change, member_vote
from pot.roles.attester import Attester
from pot.roles.settler import Settler


def test_decided_change_executes_on_chain_and_its_event_confirms_it(pot, tmp_path):
    ms, w3 = pot.c.multisig, pot.w3
    members = pot.members
    config = LedgerConfig(pot.deployment.chain_id, pot.deployment.order_book, pot.deployment.reward_multisig,
                          tuple(m.address for m in members), threshold=ms.threshold(), attested_chain_events=True,
                          epoch=ms.epoch(), member_keys=tuple(public_key(bytes(m.key)) for m in members),
                          member_endpoints=tuple(f"127.0.0.1:{7000 + i}" for i in range(len(members))))
    led = Ledger(config)
    now = lambda: max(int(w3.eth.get_block("latest")["timestamp"]), led.time)  # noqa: E731
    fresh = Account.from_key(keccak(text="committee-change-fresh"))
    join = Joining(public_key(bytes(fresh.key)), "127.0.0.1:7100", "http://127.0.0.1:8100")
    change = make_change(led.committee(), "replace", [members[3].address, fresh.address], deadline=now() + 600)
    for m in members[:3]:
        res = led.apply(member_vote(change, (join,), bytes(m.key), message_domain=config.message_domain,
                                    multisig_domain=config.multisig_domain), now())
        assert res.ok, res
    assert led.committee_changes()[0]["status"] == "decided"

    senders = [Sender(w3, m) for m in members]
    for s in senders:
        pot.node.set_balance(s.address, 10**20)
    settlers = [Settler(SimpleNamespace(settlement_timeout=1.0, n=4, replica_id=i, settlement_path="signed",
                                        data_dir=tmp_path), ledger=led, ledger_config=config, contracts=pot.c,
                        sender=senders[i], address=m.address, key=bytes(m.key), fire=None,
                        stats={"settlements": []})
                for i, m in enumerate(members)]
    turn = change.action_nonce % 4  # attempt 0: the change's nonce mod n
    others = [s for i, s in enumerate(settlers) if i != turn]

    async def run(which):
        for s in which:
            await s._settle()
    # the member whose turn it is does nothing (stopped): nobody else submits yet ...
    asyncio.run(run(others))
    assert ms.epoch() == config.epoch
    # ... until its time is over: another member takes over (the next one; on a loaded machine a
    # round may take long enough that the turn has moved on once more: each settler judges the
    # turn by its own clock, as a replica does)
    time.sleep(1.1)
    give_up = time.monotonic() + 20
    while ms.epoch() == config.epoch and time.monotonic() < give_up:
        asyncio.run(run(others))
    assert ms.epoch() == config.epoch + 1
    took_over = [i for i, s in enumerate(settlers) if [e["fn"] for e in s.stats["settlements"]] == ["executeAction"]]
    assert len(took_over) == 1 and took_over[0] != turn, took_over
    assert all(not s.stats["settlements"] for i, s in enumerate(settlers) if i != took_over[0])
    nxt = led.committee_changes()[0]["next"]
    assert nxt.same_members(ms.members(), ms.threshold())
    assert led.pending_committee() is None  # not before the chain's event is attested

    async def fire(raw, what, timeout=30.0):
        return led.apply(codec.decode(raw), now())

    async def attest(m):
        a = Attester(w3=w3, deployment=pot.deployment, ledger=led, domain=config.message_domain, address=m.address,
                     key=bytes(m.key), fire=fire, confirmations=0, stats={"attested": 0})
        await a.step()
    asyncio.run(attest(members[0]))
    assert led.pending_committee() is None  # one attestation is not f + 1
    asyncio.run(attest(members[1]))
    pending = led.pending_committee()
    assert pending is not None and pending.epoch == ms.epoch() and pending.members[3] == fresh.address
    assert pending.endpoints[3] == "127.0.0.1:7100"
    led.activate_committee()
    assert led.config.epoch == ms.epoch() and led.committee().same_members(ms.members(), ms.threshold())
