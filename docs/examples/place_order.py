"""Order training on the PoT network with the Python SDK (docs/FORMATS.md): a task from your own
files, the order on-chain, the test set released in its window, the winning model fetched and
checked back to the miner's commitment, then scored on your own test set.

    POT_RPC_URL=http://127.0.0.1:8545 POT_DEPLOYMENT=deployment.json POT_PRIVATE_KEY=0x... \\
    POT_STORE=~/.pot/store POT_API_URLS=http://127.0.0.1:8701,... python place_order.py iris.csv

POT_STORE is a store directory or an IPFS node's RPC API (http://127.0.0.1:5001); POT_API_URLS the
committee's replicas (`pot devnet up` prints both). The secret of the order (the test set and the
salt of its commitment) is kept in POT_ORDERS (default ./orders) before anything is sent. Prints
one JSON object per step.
"""

import json
import os
import sys

from pot.sdk import POT, OrderTerms, PotClient


def say(step: str, **fields) -> None:
    print(json.dumps({"step": step, **fields}), flush=True)


def main(data: str) -> None:
    pot = PotClient.connect(os.environ["POT_RPC_URL"], os.environ["POT_DEPLOYMENT"], os.environ["POT_PRIVATE_KEY"],
                            store=os.environ["POT_STORE"], api_urls=os.environ["POT_API_URLS"].split(","))
    with pot:
        # the spec and the training set go to the store; the test set stays here until the release
        task = pot.prepare_task(data=data, arch="mlp", model={"hidden": [32]}, epochs=40, lr=0.01,
                                test_fraction=0.3)
        say("prepared", specCid=task.spec_cid, trainCid=task.train_cid, testCid=task.test_cid,
            metric=task.metric, summary=task.summary)

        # short windows for a local devnet; on a real network, hours for training
        terms = OrderTerms(reward=100 * POT, train_duration=30, validate_duration=10, challenge_duration=10,
                           reveal_duration=8)
        order = pot.place_order(task, terms, save_to=os.environ.get("POT_ORDERS", "orders"))
        say("placed", orderId=order.order_id, tx=order.tx_hash, commitment="0x" + order.commitment.hex())

        # follow it: every phase change and every event of the order, until it is settled; the
        # test set is released (uploaded, then opened on-chain) as soon as its window opens
        final = pot.run(order, timeout=float(os.environ.get("POT_TIMEOUT", "600")),
                        on_update=lambda u: say("update", kind=u.kind, phase=u.status.phase.value,
                                                time=u.status.now))
        say("final", status=final.status, winner=final.winner, t3=final.t3)

        # the winning model: its reveal opens the winner's commitment, its file hashes to the settled
        # mid and is a safetensors model of the spec's architecture; scored here on our test set
        model = pot.fetch_winner(order)
        if model is None:
            say("no-winner")
            return
        path = model.save(os.environ.get("POT_ORDERS", "orders"))
        say("winner", winner=model.winner, mid="0x" + model.mid.hex(), cid=model.model_cid, path=str(path),
            localScore=model.local_score, networkScore=model.network_score, matches=model.score_matches,
            parameters=sum(p.numel() for p in model.load().parameters()))


if __name__ == "__main__":
    main(sys.argv[1])
