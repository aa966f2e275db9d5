"""``pot contracts export``: the committed npm package is what the export writes today, deployments go
in by chain id, NatSpec is there, and the generated JavaScript loads as ES module and CommonJS."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from pot.chain.compile import PUBLIC, load_artifact
from pot.chain.export import GENERATED_DIRS, ExportError, load_deployments, render

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "packages" / "contracts"


def _entry(chain_id: int, salt: int) -> dict:
    addrs = {name: "0x" + f"{salt:02x}{i:02x}".rjust(40, "0") for i, name in enumerate(PUBLIC)}
    return {"chain_id": chain_id, "block": 7 + salt, "deployer": "0x" + "11" * 20, "addresses": addrs,
            "parameters": {"threshold": 3}}


def test_committed_package_is_reproducible():
    """packages/contracts/ equals a fresh export byte for byte (scripts/build_npm_package.sh's inputs)."""
    files = render(deployments=load_deployments(sorted((ROOT / "deployments").glob("*.json"))))
    stale = [rel for rel, text in files.items()
             if not (PACKAGE / rel).is_file() or (PACKAGE / rel).read_bytes() != text.encode()]
    extra = sorted(p.relative_to(PACKAGE).as_posix() for d in GENERATED_DIRS for p in (PACKAGE / d).rglob("*")
                   if p.is_file() and p.relative_to(PACKAGE).as_posix() not in files)
    assert not stale and not extra, (f"packages/contracts is stale (run `bash scripts/build_npm_package.sh`): "
                                     f"differs {stale}, not generated {extra}")
    pkg = json.loads((PACKAGE / "package.json").read_text())
    targets = [t for e in pkg["exports"].values() for t in
               ([e] if isinstance(e, str) else [x for v in e.values() for x in v.values()]) if "*" not in t]
    assert all((PACKAGE / t).is_file() for t in targets + [pkg["main"], pkg["types"], pkg["module"]])


def test_abi_carries_natspec_and_same_code_as_artifacts():
    doc = json.loads((PACKAGE / "abi" / "OrderBook.json").read_text())
    art = load_artifact("OrderBook")
    assert doc["abi"] == art["abi"] and doc["bytecode"] == art["bytecode"]
    place = "placeOrder((uint96,uint32,uint32,uint32,uint32,bytes32,bytes32,string))"
    assert "escrow" in doc["userdoc"]["methods"][place]["notice"]
    assert doc["devdoc"]["methods"][place]["returns"]["orderId"]
    assert "OrderSettled(uint256,address,bytes32,uint256)" in doc["userdoc"]["events"]
    ts = (PACKAGE / "src" / "OrderBook.ts").read_text()
    assert "export const orderBookAbi = [" in ts and "] as const;" in ts
    dts = (PACKAGE / "dist" / "OrderBook.d.ts").read_text()
    assert 'readonly "name": "placeOrder";' in dts  # literal types, not a widened Abi


def test_export_with_deployments_and_stale_files(tmp_path):
    from pot.cli import main

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"97": _entry(97, 1)}))
    b.write_text(json.dumps({"31337": _entry(31337, 2), "97": _entry(97, 1)}))  # same chain 97: agrees
    out = tmp_path / "pkg"
    (out / "dist").mkdir(parents=True)
    (out / "dist" / "Gone.js").write_text("stale")
    (out / "README.md").write_text("mine")
    r = CliRunner().invoke(main, ["contracts", "export", "--out", str(out), "--deployment", str(a),
                                  "--deployment", str(b), "--name", "@me/pot"])
    assert r.exit_code == 0, r.output
    assert "chains: 97, 31337" in r.output and "removed stale dist/Gone.js" in r.output
    assert (out / "README.md").read_text() == "mine" and not (out / "dist" / "Gone.js").exists()
    deps = json.loads((out / "deployments.json").read_text())
    assert list(deps) == ["97", "31337"]
    assert deps["97"] == {"chainId": 97, "block": 8, "addresses": _entry(97, 1)["addresses"]}
    assert json.loads((out / "package.json").read_text())["name"] == "@me/pot"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    r = CliRunner().invoke(main, ["contracts", "export", "--out", str(out), "--deployment", str(a),
                                  "--deployment", str(b), "--name", "@me/pot"])
    assert r.exit_code == 0 and before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    clash = tmp_path / "clash.json"
    clash.write_text(json.dumps({"97": _entry(97, 3)}))
    r = CliRunner().invoke(main, ["contracts", "export", "--out", str(out), "--deployment", str(a),
                                  "--deployment", str(clash)])
    assert r.exit_code != 0 and "chain 97 is deployed differently" in r.output
    with pytest.raises(ExportError, match="not a deployment"):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"5": {"chain_id": 5, "addresses": {}}}))
        load_deployments([bad])


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js (scripts/setup.sh installs npm packages)")
def test_generated_javascript_loads_as_esm_and_commonjs(tmp_path):
    out = tmp_path / "pkg"
    dep = tmp_path / "d.json"
    dep.write_text(json.dumps({"97": _entry(97, 1)}))
    files = render(deployments=load_deployments([dep]))
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    check = ("const m = {mod};\n"
             "const fns = m.orderBookAbi.filter(x => x.type === 'function').map(x => x.name);\n"
             "if (!fns.includes('placeOrder') || !m.rewardMultisigAbi.length) throw new Error('abi');\n"
             "if (!m.orderBookBytecode.startsWith('0x60')) throw new Error('bytecode');\n"
             "if (m.getDeployment(97).addresses.OrderBook !== '{book}') throw new Error('deployment');\n"
             "const extra = {{ '5': {{ chain_id: 5, block: 1, addresses: {{ OrderBook: '0x05' }} }} }};\n"
             "if (m.getDeployment(5n, extra).addresses.OrderBook !== '0x05') throw new Error('extra');\n"
             "try {{ m.getDeployment(1); throw new Error('no throw'); }} catch (e) {{\n"
             "  if (!String(e.message).includes('no PoT deployment on chain 1')) throw e; }}\n"
             "console.log('ok', fns.length);\n")
    book = _entry(97, 1)["addresses"]["OrderBook"]
    esm = subprocess.run(["node", "--input-type=module", "-e",
                          f"import * as mod from '{out}/dist/index.js';\n" + check.format(mod="mod", book=book)],
                         capture_output=True, text=True, timeout=60)
    assert esm.returncode == 0 and esm.stdout.startswith("ok"), esm.stderr
    cjs = subprocess.run(["node", "-e", check.format(mod=f"require('{out}/dist/index.cjs')", book=book)],
                         capture_output=True, text=True, timeout=60)
    assert cjs.returncode == 0 and cjs.stdout == esm.stdout, cjs.stderr
