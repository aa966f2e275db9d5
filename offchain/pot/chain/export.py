"""``pot contracts export``: what a dApp needs from the contracts, as an npm package folder.

From the committed artifacts (no compiler needed) and any number of deployment files, writes::

    abi/<Name>.json        {"contractName", "abi", "devdoc", "userdoc", "bytecode"}: the ABI with its NatSpec
    deployments.json       {"<chainId>": {"chainId", "block", "addresses": {"<Name>": "0x.."}}}
    src/<Name>.ts          `export const orderBookAbi = [...] as const` (+ bytecode and NatSpec)
    src/deployments.ts     the deployments as a typed literal, `getDeployment(chainId)`
    src/index.ts           everything
    dist/*.js, *.cjs       the same as plain ES modules and CommonJS
    dist/*.d.ts, *.d.cts   declarations with the ABIs' literal types (viem and ethers infer from them)
    package.json           name, version, `exports`, `types`

Every file is a pure function of the artifacts, the deployments and the package name: exporting twice
gives the same bytes (tests check that the committed ``packages/contracts/`` is up to date). Only the
files listed above are written; anything else in the folder (a README, an SDK of its own) is kept, and
stale generated files (a contract that no longer exists) are removed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from pot import __version__
from pot.chain.compile import PUBLIC, load_artifact

DEFAULT_NAME = "@pot-network/contracts"
#: folders whose files are all generated (a file there that export did not write is stale)
GENERATED_DIRS = ("abi", "src", "dist")
GENERATED_FILES = ("deployments.json", "package.json")


class ExportError(ValueError):
    """Bad input to the export: conflicting deployments, an unreadable deployment file."""


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    written: tuple[str, ...]  # relative paths, sorted
    removed: tuple[str, ...]
    chains: tuple[int, ...]


def _camel(name: str) -> str:
    """PoTToken -> potToken, OrderBook -> orderBook, RewardMultisig -> rewardMultisig."""
    name = name.replace("PoT", "Pot")  # the project's name is one word
    m = re.match(r"^[A-Z]+(?=[A-Z][a-z])|^[A-Z]", name)
    return name[: m.end()].lower() + name[m.end():] if m else name


def load_deployments(paths: Iterable[str | Path]) -> dict[str, dict[str, Any]]:
    """Merge deployment files (`pot contracts deploy --out`) into chain id -> {chainId, block, addresses}.

    The same chain in two files must name the same addresses (else ExportError)."""
    merged: dict[str, dict[str, Any]] = {}
    for path in paths:
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise ExportError(f"deployment file {path} not found") from None
        except ValueError as exc:
            raise ExportError(f"deployment file {path} is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ExportError(f"{path}: expected an object of chain id -> deployment")
        for key, entry in doc.items():
            try:
                chain_id = int(entry["chain_id"])
                addresses = {name: to_checksum_address(entry["addresses"][name]) for name in PUBLIC}
                block = int(entry["block"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ExportError(f"{path}: entry {key!r} is not a deployment (chain_id, block, addresses of "
                                  f"{', '.join(PUBLIC)}): {exc!r}") from None
            if str(chain_id) != str(key):
                raise ExportError(f"{path}: entry {key!r} says chain_id {chain_id}")
            new = {"chainId": chain_id, "block": block, "addresses": addresses}
            old = merged.get(str(chain_id))
            if old is not None and old != new:
                raise ExportError(f"chain {chain_id} is deployed differently in two files ({path} and an earlier "
                                  "one): export one deployment per chain")
            merged[str(chain_id)] = new
    return dict(sorted(merged.items(), key=lambda kv: int(kv[0])))


# --- rendering ------------------------------------------------------------------------------------

def _json(value: Any, indent: int = 2) -> str:
    return json.dumps(value, indent=indent, sort_keys=False, ensure_ascii=False)


def _ts_type(value: Any, depth: int = 0) -> str:
    """The type TypeScript gives ``value`` written `as const` (what tsc would emit in a .d.ts)."""
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        if not value:
            return "readonly []"
        items = ",\n".join(inner + _ts_type(v, depth + 1) for v in value)
        return f"readonly [\n{items}\n{pad}]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        fields = "\n".join(f"{inner}readonly {json.dumps(k)}: {_ts_type(v, depth + 1)};" for k, v in value.items())
        return f"{{\n{fields}\n{pad}}}"
    raise TypeError(f"cannot type {type(value).__name__}")


def _doc_comment(lines: list[str]) -> str:
    text = [re.sub(r"\s+", " ", ln).strip().replace("*/", "*\\/") for ln in lines if ln and ln.strip()]
    if not text:
        return ""
    return "/**\n" + "".join(f" * {t}\n" for t in text) + " */\n"


HEADER = "// Generated by `pot contracts export`: do not edit (re-export instead).\n"


@dataclass(frozen=True)
class _Contract:
    name: str
    abi: list
    devdoc: dict
    userdoc: dict
    bytecode: str

    @property
    def ident(self) -> str:
        return _camel(self.name)

    def doc(self) -> str:
        lines = [self.devdoc.get("title", self.name), self.userdoc.get("notice", ""), self.devdoc.get("details", "")]
        return _doc_comment(lines)

    def natspec(self) -> dict:
        return {"devdoc": self.devdoc, "userdoc": self.userdoc}


def _contract(name: str) -> _Contract:
    art = load_artifact(name)
    if "devdoc" not in art:
        raise ExportError(f"artifact {name} has no NatSpec: run `pot contracts compile --force`")
    return _Contract(name, art["abi"], art["devdoc"], art["userdoc"], art["bytecode"])


def _module_ts(c: _Contract) -> str:
    return (f"{HEADER}import type {{ NatSpec }} from \"./types.js\";\n\n"
            f"{c.doc()}export const {c.ident}Abi = {_json(c.abi)} as const;\n\n"
            f"/** Init code of {c.name} (constructor arguments not appended). */\n"
            f"export const {c.ident}Bytecode: `0x${{string}}` = {json.dumps(c.bytecode)};\n\n"
            f"/** {c.name}'s NatSpec as solc gives it (devdoc: @dev, @param, @return; userdoc: @notice). */\n"
            f"export const {c.ident}NatSpec: NatSpec = {_json(c.natspec())};\n")


def _module_js(c: _Contract, cjs: bool) -> str:
    names = (f"{c.ident}Abi", f"{c.ident}Bytecode", f"{c.ident}NatSpec")
    values = (_json(c.abi), json.dumps(c.bytecode), _json(c.natspec()))
    if cjs:
        body = "".join(f"exports.{n} = {v};\n" for n, v in zip(names, values))
        return f"{HEADER}\"use strict\";\n{body}"
    body = "".join(f"export const {n} = {v};\n" for n, v in zip(names, values))
    return f"{HEADER}{c.doc()}{body}"


def _module_dts(c: _Contract, ext: str) -> str:
    return (f"{HEADER}import type {{ NatSpec }} from \"./types.{ext}\";\n\n"
            f"{c.doc()}export declare const {c.ident}Abi: {_ts_type(c.abi)};\n"
            f"/** Init code of {c.name} (constructor arguments not appended). */\n"
            f"export declare const {c.ident}Bytecode: `0x${{string}}`;\n"
            f"/** {c.name}'s NatSpec as solc gives it (devdoc: @dev, @param, @return; userdoc: @notice). */\n"
            f"export declare const {c.ident}NatSpec: NatSpec;\n")


TYPES_TS = f"""{HEADER}
/** NatSpec of one contract as solc's devdoc and userdoc outputs give it. */
export interface NatSpec {{
  readonly devdoc: {{ readonly [key: string]: unknown }};
  readonly userdoc: {{ readonly [key: string]: unknown }};
}}

/** Names of the PoT contracts. */
export type ContractName = {" | ".join(json.dumps(n) for n in PUBLIC)};

/** Where one deployment lives: its chain, its first block (scan events from there) and its addresses. */
export interface Deployment {{
  readonly chainId: number;
  readonly block: number;
  readonly addresses: {{ readonly [name in ContractName]: `0x${{string}}` }};
}}
"""

_GET_DEPLOYMENT_DOC = """/**
 * The deployment on `chainId`: the one this package was built with, or one of `extra` (a deployment
 * file of `pot contracts deploy`, parsed: `{ "<chainId>": { chain_id, block, addresses } }`, or this
 * package's own format). Throws when the chain has none.
 */"""


_GET_DEPLOYMENT_TS = """export function getDeployment(chainId: number | bigint, extra?: unknown): Deployment {
  const key = String(chainId);
  const pick = (doc: unknown): Deployment | undefined => {
    const e = (doc as Record<string, any> | null | undefined)?.[key];
    if (!e || typeof e !== "object") return undefined;
    const id = Number(e.chainId ?? e.chain_id);
    if (id !== Number(key)) throw new Error(`deployment for chain ${key} says chain ${id}`);
    return { chainId: id, block: Number(e.block), addresses: e.addresses };
  };
  const found = pick(extra) ?? pick(deployments);
  if (!found) {
    throw new Error(`no PoT deployment on chain ${key} (known: ${Object.keys(deployments).join(", ") || "none"}); `
      + "pass the deployment file of `pot contracts deploy` as the second argument");
  }
  return found;
}
"""


def _deployments_ts(deps: dict) -> str:
    return (f"{HEADER}import type {{ Deployment }} from \"./types.js\";\n\n"
            f"/** The deployments this package was built with, by chain id. */\n"
            f"export const deployments = {_json(deps)} as const satisfies {{ readonly [chainId: string]: Deployment }};\n\n"
            f"{_GET_DEPLOYMENT_DOC}\n{_GET_DEPLOYMENT_TS}")


_GET_DEPLOYMENT_JS = """function getDeployment(chainId, extra) {
  const key = String(chainId);
  const pick = (doc) => {
    const e = doc == null ? undefined : doc[key];
    if (!e || typeof e !== "object") return undefined;
    const id = Number(e.chainId ?? e.chain_id);
    if (id !== Number(key)) throw new Error(`deployment for chain ${key} says chain ${id}`);
    return { chainId: id, block: Number(e.block), addresses: e.addresses };
  };
  const found = pick(extra) ?? pick(deployments);
  if (!found) {
    throw new Error(`no PoT deployment on chain ${key} (known: ${Object.keys(deployments).join(", ") || "none"}); `
      + "pass the deployment file of `pot contracts deploy` as the second argument");
  }
  return found;
}
"""


def _deployments_js(deps: dict, cjs: bool) -> str:
    if cjs:
        return (f"{HEADER}\"use strict\";\nconst deployments = {_json(deps)};\n{_GET_DEPLOYMENT_JS}"
                "exports.deployments = deployments;\nexports.getDeployment = getDeployment;\n")
    return f"{HEADER}export const deployments = {_json(deps)};\n\n{_GET_DEPLOYMENT_DOC}\nexport {_GET_DEPLOYMENT_JS}"


def _deployments_dts(deps: dict, ext: str) -> str:
    return (f"{HEADER}import type {{ Deployment }} from \"./types.{ext}\";\n\n"
            f"/** The deployments this package was built with, by chain id. */\n"
            f"export declare const deployments: {_ts_type(deps)};\n"
            f"{_GET_DEPLOYMENT_DOC}\n"
            "export declare function getDeployment(chainId: number | bigint, extra?: unknown): Deployment;\n")


def _index(contracts: list[_Contract], kind: str) -> str:
    """index for kind ts (source), js (ESM), cjs, dts, dcts."""
    mods = [c.name for c in contracts] + ["deployments"]
    if kind == "cjs":
        lines = [f"{HEADER}\"use strict\";"]
        lines += [f"Object.assign(exports, require(\"./{m}.cjs\"));" for m in mods]
        return "\n".join(lines) + "\n"
    ext = {"ts": "js", "js": "js", "dts": "js", "dcts": "cjs"}[kind]
    lines = [HEADER.rstrip("\n")]
    lines += [f"export * from \"./{m}.{ext}\";" for m in mods]
    if kind != "js":
        lines.append(f"export type {{ ContractName, Deployment, NatSpec }} from \"./types.{ext}\";")
    return "\n".join(lines) + "\n"


def _package_json(name: str) -> str:
    doc = {
        "name": name,
        "version": __version__,
        "description": "ABIs (as const, with NatSpec), bytecode and deployment addresses of the PoT "
                       "(Proof-of-Training) contracts, for viem, ethers and plain JavaScript",
        "license": "MIT",
        "type": "module",
        "main": "./dist/index.cjs",
        "module": "./dist/index.js",
        "types": "./dist/index.d.ts",
        "exports": {
            ".": {
                "import": {"types": "./dist/index.d.ts", "default": "./dist/index.js"},
                "require": {"types": "./dist/index.d.cts", "default": "./dist/index.cjs"},
            },
            "./abi/*.json": "./abi/*.json",
            "./deployments.json": "./deployments.json",
            "./package.json": "./package.json",
        },
        "files": ["abi", "dist", "src", "deployments.json", "README.md"],
        "sideEffects": False,
        "keywords": ["pot", "proof-of-training", "abi", "viem", "ethers", "solidity"],
    }
    return json.dumps(doc, indent=2) + "\n"


def render(name: str = DEFAULT_NAME, deployments: dict | None = None) -> dict[str, str]:
    """Every generated file: relative path -> text."""
    deps = deployments or {}
    contracts = [_contract(n) for n in PUBLIC]
    files: dict[str, str] = {}
    for c in contracts:
        files[f"abi/{c.name}.json"] = json.dumps({"contractName": c.name, "abi": c.abi, "devdoc": c.devdoc,
                                                  "userdoc": c.userdoc, "bytecode": c.bytecode},
                                                 indent=1, sort_keys=True) + "\n"
        files[f"src/{c.name}.ts"] = _module_ts(c)
        files[f"dist/{c.name}.js"] = _module_js(c, cjs=False)
        files[f"dist/{c.name}.cjs"] = _module_js(c, cjs=True)
        files[f"dist/{c.name}.d.ts"] = _module_dts(c, "js")
        files[f"dist/{c.name}.d.cts"] = _module_dts(c, "cjs")
    files["deployments.json"] = json.dumps(deps, indent=2) + "\n"
    files["src/types.ts"] = TYPES_TS
    files["dist/types.js"] = f"{HEADER}export {{}};\n"
    files["dist/types.cjs"] = f"{HEADER}\"use strict\";\n"
    files["dist/types.d.ts"] = TYPES_TS
    files["dist/types.d.cts"] = TYPES_TS
    files["src/deployments.ts"] = _deployments_ts(deps)
    files["dist/deployments.js"] = _deployments_js(deps, cjs=False)
    files["dist/deployments.cjs"] = _deployments_js(deps, cjs=True)
    files["dist/deployments.d.ts"] = _deployments_dts(deps, "js")
    files["dist/deployments.d.cts"] = _deployments_dts(deps, "cjs")
    for kind, path in (("ts", "src/index.ts"), ("js", "dist/index.js"), ("cjs", "dist/index.cjs"),
                       ("dts", "dist/index.d.ts"), ("dcts", "dist/index.d.cts")):
        files[path] = _index(contracts, kind)
    files["package.json"] = _package_json(name)
    return dict(sorted(files.items()))


def export(out_dir: str | Path, deployment_files: Iterable[str | Path] = (), *, name: str = DEFAULT_NAME) -> ExportResult:
    """Write the package folder ``out_dir`` (see the module docstring); returns what changed."""
    out = Path(out_dir)
    deps = load_deployments(deployment_files)
    files = render(name, deps)
    removed = []
    for sub in GENERATED_DIRS:
        d = out / sub
        if d.is_dir():
            for p in sorted(d.rglob("*")):
                rel = p.relative_to(out).as_posix()
                if p.is_file() and rel not in files:
                    p.unlink()
                    removed.append(rel)
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode()
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
    return ExportResult(out, tuple(files), tuple(removed), tuple(int(k) for k in deps))
