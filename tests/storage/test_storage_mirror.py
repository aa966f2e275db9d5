"""A participant reading through the committee's replicas (``open_store(mirrors=…)``) while one
replica is frozen (SIGSTOP: the kernel still accepts its connections, nobody answers): the read
must come from the others within seconds, not after the frozen one's timeout, and the next read
must not ask the frozen one first again. In the 3-minute soak the validators' test set came 12 s
late this way, after the window had closed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from pot.ports import free_port
from pot.storage import EmbeddedStore, open_store
from pot.storage.mirror import MirroredStore


def _serve(store_dir, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "pot.cli", "storage", "serve", "--port", str(port),
                             "--store", str(store_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import socket

    give_up = time.monotonic() + 30
    while time.monotonic() < give_up:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the gateway did not start")


@pytest.fixture
def replicas(tmp_path):
    """Two gateways serving the same content, as replicas that both hold an upload."""
    procs, urls, cids = [], [], []
    for i in range(2):
        store = EmbeddedStore(tmp_path / f"replica{i}")
        cids = [store.add_bytes(b"test set %d " % k * 4000) for k in range(3)]
        store.close()
        port = free_port()
        procs.append(_serve(tmp_path / f"replica{i}", port))
        urls.append(f"http://127.0.0.1:{port}")
    yield procs, urls, cids
    for p in procs:
        os.kill(p.pid, signal.SIGCONT)
        p.kill()
        p.wait()


def test_a_frozen_replica_costs_seconds_once(tmp_path, replicas):
    procs, urls, cids = replicas
    os.kill(procs[0].pid, signal.SIGSTOP)  # the first one every reader asks
    reader = open_store(str(tmp_path / "reader"), mirrors=urls)
    assert isinstance(reader, MirroredStore)
    t = time.monotonic()
    assert reader.get(cids[0]) == b"test set 0 " * 4000
    first = time.monotonic() - t
    t = time.monotonic()
    assert reader.get(cids[1]) == b"test set 1 " * 4000
    assert reader.get(cids[2]) == b"test set 2 " * 4000
    later = time.monotonic() - t
    reader.close()
    assert first < 8.0, f"the first read took {first:.1f} s behind a frozen replica"
    assert later < 2.0, f"the next reads asked the frozen replica again ({later:.1f} s)"


def test_every_replica_frozen_is_a_clear_error(tmp_path, replicas):
    procs, urls, cids = replicas
    for p in procs:
        os.kill(p.pid, signal.SIGSTOP)
    reader = open_store(str(tmp_path / "reader"), mirrors=urls)
    from pot.storage import NotFound

    t = time.monotonic()
    with pytest.raises(NotFound, match="2 remotes"):
        reader.get(cids[0])
    reader.close()
    assert time.monotonic() - t < 20.0
