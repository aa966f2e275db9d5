"""Helpers of the storage tests (a uniquely named module: test dirs share one import namespace).

Start an offline js-ipfs node (tools/ipfs) that serves the Kubo RPC API on 127.0.0.1.

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

from pot.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / "tools" / "ipfs"
JSIPFS = TOOLS / "node_modules" / ".bin" / "jsipfs"
POLYFILL = TOOLS / "polyfill.cjs"

SKIP_REASON = (f"js-ipfs not installed ({JSIPFS} missing): run `bash tools/ipfs/install.sh` "
               "(npm, about 3 minutes) to test KuboStore against a real IPFS node")


def available() -> bool:
    return JSIPFS.exists() and shutil.which("node") is not None


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


def golden(n: int) -> bytes:
    """The issue's test content: bytes(i % 251 for i in range(n)), built fast."""
    pattern = bytes(range(251))
    return (pattern * (n // 251 + 1))[:n]


def socket_addresses(pid: int) -> list[tuple[str, str, str]]:
    """(protocol, local, remote) addresses of every inet socket the process holds (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])

    def addr(hexaddr: str) -> str:
        host, port = hexaddr.split(":")
        raw = bytes.fromhex(host)
        if len(raw) == 4:
            return f"{socket.inet_ntop(socket.AF_INET, raw[::-1])}:{int(port, 16)}"
        # /proc stores IPv6 as four host-order 32-bit words
        words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
        return f"[{socket.inet_ntop(socket.AF_INET6, words)}]:{int(port, 16)}"

    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        path = Path(f"/proc/{pid}/net/{proto}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            if cols[9] in inodes:
                found.append((proto, addr(cols[1]), addr(cols[2])))
    return found


def is_local(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "::1", "0.0.0.0", "::") or host.startswith("127.") \
        or host.startswith("::ffff:127.")
