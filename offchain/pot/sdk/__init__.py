"""The Python SDK for integrators: order training on the PoT network from a script or a dApp backend.

::

    from pot.sdk import OrderTerms, PotClient

    with PotClient.connect(rpc_url, "deployment.json", private_key, store="~/.pot/store",
                           api_urls=committee_urls) as pot:
        task = pot.prepare_task(data="iris.csv", epochs=20)              # spec + training set uploaded
        order = pot.place_order(task, OrderTerms(reward=100 * 10**18), save_to="orders/")
        final = pot.run(order, on_update=print)                          # releases the test set in its window
        model = pot.fetch_winner(order)                                  # checked; scored on your test set

The pieces, usable on their own:

- :func:`build_task` / :func:`upload_task` (:mod:`pot.sdk.task`): data from files -> task spec,
  training set, test set; the spec and the training set go on a content store.
- :func:`place_order` / :func:`release_test_data` (:mod:`pot.sdk.orders`) with an
  :class:`OrderSecret` (the test set and the salt of the on-chain ``testCommitment``);
  :class:`OrderWatch` follows an order's events and phase (:class:`pot.protocol.timeline.Phase`).
- :func:`check_reveal` / :func:`check_model_file` / :func:`standing_score` (:mod:`pot.sdk.models`):
  the winning model back to the miner's commitment, its mid and the spec.

Every format (task spec, data sets, CIDs, commitments) is in docs/FORMATS.md, with the same steps in
JavaScript. Names exported here are the SDK's stable surface; the modules' other names may change.
"""

from pot.protocol.timeline import Phase
from pot.sdk.client import PotClient
from pot.sdk.models import (
    ModelCheckError,
    NotSettled,
    WinningModel,
    check_model_file,
    check_reveal,
    standing_score,
)
from pot.sdk.orders import (
    OrderSecret,
    OrderStatus,
    OrderTerms,
    OrderUpdate,
    OrderWatch,
    new_secret,
    place_order,
    release_test_data,
)
from pot.sdk.task import PreparedTask, Task, TaskOptions, build_task, check_validation_window, upload_task

#: 1 POT in token wei (the token has 18 decimals)
POT = 10**18

__all__ = [
    "POT",
    "ModelCheckError",
    "NotSettled",
    "OrderSecret",
    "OrderStatus",
    "OrderTerms",
    "OrderUpdate",
    "OrderWatch",
    "Phase",
    "PotClient",
    "PreparedTask",
    "Task",
    "TaskOptions",
    "WinningModel",
    "build_task",
    "check_model_file",
    "check_reveal",
    "check_validation_window",
    "new_secret",
    "place_order",
    "release_test_data",
    "standing_score",
    "upload_task",
]
