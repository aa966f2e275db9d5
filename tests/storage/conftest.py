"""Start an offline js-ipfs node (tools/ipfs) that serves the Kubo RPC API on 127.0.0.1.

Every address the node could dial or listen on is local or removed: no swarm listeners, no
bootstrap peers, no delegates, no preload nodes, no MDNS, and ``--offline``. So the tests never
reach a public address even on a machine with Internet access.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / "tools" / "ipfs"
JSIPFS = TOOLS / "node_modules" / ".bin" / "jsipfs"
POLYFILL = TOOLS / "polyfill.cjs"

SKIP_REASON = (f"js-ipfs not installed ({JSIPFS} missing): run `bash tools/ipfs/install.sh` "
               "(npm, about 3 minutes) to test KuboStore against a real IPFS node")


def available() -> bool:
    return JSIPFS.exists() and shutil.which("node") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class JsIpfsNode:
    api_url: str
    gateway_url: str
    repo: Path
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _env(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["IPFS_PATH"] = str(repo)
    env["NODE_OPTIONS"] = f"--require {POLYFILL} " + env.get("NODE_OPTIONS", "")
    env.pop("IPFS_MONITORING", None)
    return env


def start(repo: Path, timeout: float = 60.0) -> JsIpfsNode:
    env = _env(repo)
    subprocess.run([str(JSIPFS), "init", "--emptyRepo"], env=env, check=True, capture_output=True,
                   timeout=60)
    config_path = repo / "config"
    config = json.loads(config_path.read_text())
    api_port, gw_port, rpc_port = free_port(), free_port(), free_port()
    config["Addresses"].update({
        "Swarm": [], "Announce": [], "NoAnnounce": [], "Delegates": [],
        "API": f"/ip4/127.0.0.1/tcp/{api_port}",
        "Gateway": f"/ip4/127.0.0.1/tcp/{gw_port}",
        "RPC": f"/ip4/127.0.0.1/tcp/{rpc_port}",
    })
    config["Bootstrap"] = []
    config["Discovery"] = {"MDNS": {"Enabled": False, "Interval": 10}, "webRTCStar": {"Enabled": False}}
    config["Pubsub"] = {"Router": "gossipsub", "Enabled": False}
    config["Swarm"]["DisableNatPortMap"] = True
    config["Routing"] = {"Type": "none"}
    config_path.write_text(json.dumps(config, indent=2))

    log = repo / "daemon.log"
    proc = subprocess.Popen(
        [str(JSIPFS), "daemon", "--offline", "--enable-preload=false"],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=repo,
    )
    node = JsIpfsNode(f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{gw_port}", repo, proc, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"js-ipfs daemon exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.post(f"{node.api_url}/api/v0/id", timeout=2).status_code == 200:
                return node
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    node.stop()
    raise RuntimeError(f"js-ipfs API did not come up in {timeout}s:\n{log.read_text()[-3000:]}")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def jsipfs(tmp_path_factory) -> JsIpfsNode:
    """One offline js-ipfs node for the session (startup takes a few seconds)."""
    if not available():
        pytest.skip(SKIP_REASON)
    node = start(tmp_path_factory.mktemp("jsipfs"))
    yield node
    node.stop()


def golden(n: int) -> bytes:
    """The issue's test content: bytes(i % 251 for i in range(n)), built fast."""
    pattern = bytes(range(251))
    return (pattern * (n // 251 + 1))[:n]
