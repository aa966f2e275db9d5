import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def anvil():
    from pot.chain.anvil import Anvil

    # automine for the tests' own transactions, plus a block every second: a real-time cycle
    # needs block time to move (eth_estimateGas runs at the latest block's timestamp)
    with Anvil(block_time=1, extra_args=("--mixed-mining",)) as node:
        yield node
