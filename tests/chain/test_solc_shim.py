"""tools/solc: the native-solc command line over solc-js that forge, py-solc-x, Ape and
``pot contracts compile`` call. Driven as those tools drive it: a real process, real files."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from pot.chain.compile import repo_root

ROOT = repo_root()
SHIM = ROOT / "tools" / "solc"


def solc(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    # Executed directly, as forge does (foundry.toml `solc = "tools/solc"`), not through `node`.
    return subprocess.run([str(SHIM), *args], input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=120)


def std_input(sources: dict[str, dict[str, str]]) -> str:
    return json.dumps({
        "language": "Solidity",
        "sources": sources,
        "settings": {"outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}}},
    })


def forge_args(*allow: Path) -> list[str]:
    """What forge 1.7 passes (logged from a real `forge build`)."""
    paths = ",".join(str(p) for p in (ROOT, ROOT / "node_modules", *allow))
    return ["--allow-paths", paths, "--base-path", str(ROOT), "--standard-json"]


def errors(out: dict) -> list[str]:
    return [e["formattedMessage"] for e in out.get("errors", []) if e["severity"] == "error"]


def test_version_in_native_format():
    r = solc("--version")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "solc, the solidity compiler commandline interface"
    assert re.fullmatch(r"Version: 0\.8\.37\+commit\.[0-9a-f]{8}\.Linux\.g\+\+", lines[1])


def test_forge_call_resolves_imports_from_disk_and_prints_only_json():
    # The import is not in the input: the shim reads it relative to the base path.
    src = ('pragma solidity ^0.8.24;\nimport {IERC20} from "node_modules/@openzeppelin/contracts/token/ERC20/IERC20.sol";\n'
           "contract UsesIt { function f(IERC20 t) external view returns (uint256) { return t.totalSupply(); } }\n")
    r = solc(*forge_args(), stdin=std_input({"contracts/UsesIt.sol": {"content": src}}))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)  # nothing but JSON on stdout (solc-js's SMT notice is silenced)
    assert errors(out) == []
    assert out["contracts"]["contracts/UsesIt.sol"]["UsesIt"]["evm"]["bytecode"]["object"]
    assert "node_modules/@openzeppelin/contracts/token/ERC20/IERC20.sol" in out["sources"]


def test_imports_outside_the_allowed_paths_are_not_read(tmp_path):
    outside = tmp_path / "Outside.sol"
    outside.write_text("pragma solidity ^0.8.24;\ncontract Outside {}\n")
    src = f'pragma solidity ^0.8.24;\nimport "{outside}";\ncontract A is Outside {{}}\n'
    inp = std_input({"contracts/A.sol": {"content": src}})

    refused = solc(*forge_args(), stdin=inp)
    assert refused.returncode == 0  # as native solc: source errors are in the JSON
    assert any("not found" in e.lower() for e in errors(json.loads(refused.stdout)))

    allowed = solc(*forge_args(tmp_path), stdin=inp)
    out = json.loads(allowed.stdout)
    assert errors(out) == [] and "A" in out["contracts"]["contracts/A.sol"]


def test_large_input_and_output_arrive_whole():
    # ~0.8 MB in and, with the sources echoed in the metadata, more out: far beyond any pipe buffer.
    pad = "// " + "x" * 1000 + "\n"
    sources = {
        f"contracts/C{i}.sol": {"content": f"pragma solidity ^0.8.24;\n{pad * 40}contract C{i} {{ uint256 public v{i}; }}\n"}
        for i in range(20)
    }
    inp = json.loads(std_input(sources))
    inp["settings"]["metadata"] = {"useLiteralContent": True}
    inp["settings"]["outputSelection"]["*"]["*"].append("metadata")
    r = solc("--base-path", str(ROOT), "--standard-json", stdin=json.dumps(inp))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert errors(out) == []
    assert len(out["contracts"]) == 20 and len(r.stdout) > 800_000
    assert all("x" * 1000 in out["contracts"][name][f"C{i}"]["metadata"] for i, name in enumerate(sources))


def test_compile_errors_come_back_in_the_json_with_exit_0():
    r = solc(*forge_args(), stdin=std_input({"contracts/Bad.sol": {"content": "contract Bad { function }"}}))
    assert r.returncode == 0
    assert errors(json.loads(r.stdout))


def test_bad_usage_fails_with_one_clear_line():
    r = solc("--bin", "x.sol")
    assert r.returncode == 1 and "unsupported option --bin" in r.stderr and r.stdout == ""
    r = solc("--standard-json", stdin="")
    assert r.returncode == 1 and "no input" in r.stderr
    r = solc("--base-path")
    assert r.returncode == 1 and "missing value for --base-path" in r.stderr
