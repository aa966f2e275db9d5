#!/usr/bin/env bash
# Proves that Ape (eth-ape) compiles the PoT contracts OFFLINE, in a venv of its own.
#   - .venv-ape/: eth-ape, ape-foundry, ape-solidity at pinned versions (created if missing).
#     Ape pins web3 < 8, so it must never share a venv with the core package (.venv/).
#   - solc: a temp dir holding a `solc-v0.8.37` link to tools/solc (solc-js behind a native-solc
#     CLI) is passed as SOLCX_BINARY_PATH, so no compiler is downloaded.
#   - OpenZeppelin: the `local` dependency on node_modules/@openzeppelin (ape-config.yaml).
#   - Ape's data folder (dependency copies) goes to the same temp dir, never to ~/.ape.
# Then runs `ape compile --force` and checks that PoTToken, StakeRegistry, OrderBook,
# ChallengeManager and RewardMultisig have non-empty bytecode in .build/ (gitignored).
# Needs `npm ci` first. Only the pip install needs a network (PyPI).
# Env: PYTHON (default python3), APE_VENV (default .venv-ape).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

for need in node_modules/@openzeppelin/contracts/token/ERC20/ERC20.sol node_modules/solc/package.json; do
  if [ ! -e "$need" ]; then
    echo "ape-check: $need missing: run \`npm ci\` first" >&2
    exit 2
  fi
done

venv="${APE_VENV:-.venv-ape}"
if [ ! -x "$venv/bin/ape" ]; then
  echo "==> creating $venv (eth-ape 0.8.51, ape-foundry 0.8.12, ape-solidity 0.8.6)"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  # Only the three pins: `pip install -e '.[ape]'` would clash with the core's web3 >= 8.
  "$venv/bin/pip" install --quiet 'eth-ape==0.8.51' 'ape-foundry==0.8.12' 'ape-solidity==0.8.6'
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp" $root/contracts/.cache' EXIT  # Ape's unpacked dependencies must not look like our sources
mkdir -p "$tmp/solc" "$tmp/ape-data"
ln -s "$root/tools/solc" "$tmp/solc/solc-v0.8.37"
export SOLCX_BINARY_PATH="$tmp/solc"
export APE_DATA_FOLDER="$tmp/ape-data"
export PATH="$root/node_modules/.bin:$PATH"

echo "==> ape compile --force (solc 0.8.37 via tools/solc, offline)"
rm -f .build/__local__.json
"$venv/bin/ape" compile --force

echo "==> checking artifacts in .build/"
"$venv/bin/python" - <<'PY'
import json
import pathlib
import sys

manifest = pathlib.Path(".build/__local__.json")
if not manifest.is_file():
    sys.exit(f"ape-check: {manifest} was not written")
types = json.loads(manifest.read_text()).get("contractTypes") or {}
bad = []
for name in ("PoTToken", "StakeRegistry", "OrderBook", "ChallengeManager", "RewardMultisig"):
    code = ((types.get(name) or {}).get("deploymentBytecode") or {}).get("bytecode") or ""
    if len(code.removeprefix("0x")) == 0:
        bad.append(name)
    else:
        print(f"  {name:<17} {len(code.removeprefix('0x')) // 2:>6} bytes of init code")
if bad:
    sys.exit(f"ape-check: no bytecode for {', '.join(bad)} in {manifest}")
PY

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  if [ -n "$(git status --porcelain --untracked-files=all -- .build contracts/.cache)" ]; then
    echo "ape-check: Ape output is not gitignored (.build/, contracts/.cache/)" >&2
    exit 1
  fi
fi
echo "==> ape compile OK"
