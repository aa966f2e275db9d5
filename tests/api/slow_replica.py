"""A real API server process over test_api's ledger that answers every request ``delay`` seconds
late: a deliberately slow replica for the committee client's tests.

    python slow_replica.py PORT DELAY_S
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_api import T0, Clock, make_ledger  # noqa: E402

from pot.api import LocalNode, create_app  # noqa: E402


def main() -> None:
    port, delay = int(sys.argv[1]), float(sys.argv[2])
    app = create_app(LocalNode(make_ledger(), Clock(T0 + 1)))

    async def slow(scope, receive, send):
        if scope["type"] == "http":
            await asyncio.sleep(delay)
        await app(scope, receive, send)

    uvicorn.run(slow, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
