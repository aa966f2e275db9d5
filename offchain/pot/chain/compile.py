"""Solidity -> ABI + bytecode with the pinned compiler, reproducibly, into committed JSON artifacts.

The artifacts (``pot/chain/artifacts/<Name>.json``: abi, bytecode, deployedBytecode) are
committed, so users and dApps need no compiler. ``compile_contracts()`` regenerates them and is a
no-op when a stamp (hash of every source, the settings and the compiler version) is unchanged.

The compiler is ``tools/solc`` (a native-solc-compatible front to the pinned solc-js in
``node_modules``), or any native solc named by ``POT_SOLC``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Compiler settings are part of the artifact's identity: same sources + settings = same bytes.
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 10_000},
    "evmVersion": "cancun",
    "remappings": ["@openzeppelin/=node_modules/@openzeppelin/"],
    "metadata": {"bytecodeHash": "none", "appendCBOR": False},
    # devdoc/userdoc are the NatSpec dApps read (`pot contracts export`); asking for them changes
    # no bytecode (scripts/forge-check.sh compares forge's bytecode with these artifacts)
    "outputSelection": {"*": {"*": ["abi", "devdoc", "userdoc", "evm.bytecode.object",
                                    "evm.deployedBytecode.object"]}},
}

#: Contracts exported for users (the test ones go to artifacts/test/).
PUBLIC = ("PoTToken", "StakeRegistry", "OrderBook", "ChallengeManager", "RewardMultisig")

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
STAMP = ARTIFACTS_DIR / "stamp.json"


class CompileError(RuntimeError):
    """The compiler refused the sources (message has the formatted errors)."""


def repo_root() -> Path:
    """The checkout holding contracts/ (the package is installed editable from it)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "contracts").is_dir() and (parent / "package.json").is_file():
            return parent
    raise FileNotFoundError("contracts/ not found above pot/chain: compile from a source checkout")


def solc_command(root: Path) -> list[str]:
    native = os.environ.get("POT_SOLC")
    if native:
        return [native]
    wrapper = root / "tools" / "solc"
    if not (root / "node_modules" / "solc").is_dir():
        raise FileNotFoundError("node_modules/solc missing: run `npm ci` (scripts/setup.sh does)")
    return ["node", str(wrapper)]


def _sources(root: Path) -> dict[str, Path]:
    # hidden folders are other tools' caches (Ape unpacks OpenZeppelin into contracts/.cache/)
    found = {}
    for p in sorted((root / "contracts").rglob("*.sol")):
        rel = p.relative_to(root)
        if not any(part.startswith(".") for part in rel.parts):
            found[rel.as_posix()] = p
    return found


def _stamp(root: Path, sources: dict[str, Path]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(SETTINGS, sort_keys=True).encode())
    lock = root / "package-lock.json"
    if lock.exists():
        # the compiler and the imported library, not the whole lockfile: an unrelated dev
        # dependency (a browser-test tool) must not make the artifacts look stale
        packages = json.loads(lock.read_text()).get("packages", {})
        for dep in ("node_modules/solc", "node_modules/@openzeppelin/contracts"):
            h.update(json.dumps(packages.get(dep, {}).get("version")).encode())
    h.update(os.environ.get("POT_SOLC", "").encode())
    for name, path in sources.items():
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class CompileResult:
    compiled: bool  # False when the artifacts were already up to date
    contracts: tuple[str, ...]
    out_dir: Path


def compile_contracts(force: bool = False, out_dir: Path | None = None) -> CompileResult:
    """Compile contracts/ into ``out_dir`` (default: the package's artifacts), unless up to date."""
    root = repo_root()
    out_dir = out_dir or ARTIFACTS_DIR
    sources = _sources(root)
    stamp = _stamp(root, sources)
    stamp_file = out_dir / "stamp.json"
    if not force and stamp_file.exists():
        try:
            if json.loads(stamp_file.read_text())["stamp"] == stamp:
                names = tuple(sorted(p.stem for p in out_dir.glob("*.json") if p.name != "stamp.json"))
                return CompileResult(False, names, out_dir)
        except (ValueError, KeyError):
            pass
    std_input = {
        "language": "Solidity",
        "sources": {name: {"content": path.read_text()} for name, path in sources.items()},
        "settings": SETTINGS,
    }
    cmd = solc_command(root) + ["--standard-json", "--base-path", str(root),
                                "--include-path", str(root / "node_modules")]
    proc = subprocess.run(cmd, input=json.dumps(std_input), capture_output=True, text=True, cwd=root)
    if proc.returncode != 0:
        raise CompileError(f"solc failed ({proc.returncode}): {proc.stderr.strip()}")
    try:
        output = json.loads(proc.stdout)
    except ValueError as exc:
        raise CompileError(f"solc printed something other than JSON: {proc.stdout[:300]!r}") from exc
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError("\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors))
    version = subprocess.run(solc_command(root) + ["--version"], capture_output=True, text=True,
                             cwd=root).stdout.strip().splitlines()[-1].removeprefix("Version: ")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "test").mkdir(exist_ok=True)
    written = []
    for source, contracts in output["contracts"].items():
        if not source.startswith("contracts/") or "/interfaces/" in source or "/libraries/" in source:
            continue
        for name, c in contracts.items():
            bytecode = c["evm"]["bytecode"]["object"]
            if not bytecode:
                continue  # interfaces, abstract contracts
            artifact = {
                "contractName": name,
                "sourceName": source,
                "abi": c["abi"],
                "devdoc": c.get("devdoc", {}),
                "userdoc": c.get("userdoc", {}),
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + c["evm"]["deployedBytecode"]["object"],
                "compiler": {"version": version, "settings": SETTINGS},
            }
            target = out_dir / "test" if source.startswith("contracts/test/") else out_dir
            (target / f"{name}.json").write_text(json.dumps(artifact, indent=1, sort_keys=True) + "\n")
            written.append(name)
    stamp_file.write_text(json.dumps({"stamp": stamp, "compiler": version}, indent=1) + "\n")
    return CompileResult(True, tuple(sorted(written)), out_dir)


def load_artifact(name: str) -> dict[str, Any]:
    """The artifact of contract ``name`` (public ones, then the test-only ones)."""
    for path in (ARTIFACTS_DIR / f"{name}.json", ARTIFACTS_DIR / "test" / f"{name}.json"):
        if path.exists():
            return json.loads(path.read_text())
    raise FileNotFoundError(f"no artifact for {name!r}: run `pot contracts compile`")
