#!/usr/bin/env bash
# Proves that Ape (eth-ape) compiles the PoT contracts OFFLINE, in a venv of its own, and that the Ape
# scripts deploy and place an order on a local Anvil through the `devnet` network of ape-config.yaml.
#   - .venv-ape/: eth-ape, ape-foundry, ape-solidity at pinned versions (created if missing).
#     Ape pins web3 < 8, so it must never share a venv with the core package (.venv/).
#   - solc: a temp dir holding a `solc-v0.8.37` link to tools/solc (solc-js behind a native-solc
#     CLI) is passed as SOLCX_BINARY_PATH, so no compiler is downloaded.
#   - OpenZeppelin: the `local` dependency on node_modules/@openzeppelin (ape-config.yaml).
#   - Ape's data folder (dependency copies) goes to the same temp dir, never to ~/.ape.
# Then runs `ape compile --force` and checks that PoTToken, StakeRegistry, OrderBook,
# ChallengeManager and RewardMultisig have non-empty bytecode in .build/ (gitignored); then starts
# node_modules/.bin/anvil on a free loopback port and runs, with POT_DEVNET_RPC pointing at it,
# `ape run ape_deploy --network ethereum:devnet:node` (writes a deployment file in the format of
# `pot contracts deploy`) and `ape run ape_place_order` (loads that file, approves, places an order),
# and checks the order on-chain with cast.
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
anvil_pid=""
cleanup() {
  [ -n "$anvil_pid" ] && kill "$anvil_pid" 2>/dev/null
  rm -rf "$tmp" "$root/contracts/.cache"  # Ape's unpacked dependencies must not look like our sources
}
trap cleanup EXIT
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

echo "==> ape run ape_deploy / ape_place_order on a local Anvil (network ethereum:devnet:node)"
port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
anvil --host 127.0.0.1 --port "$port" --chain-id 31337 --silent &
anvil_pid=$!
export POT_DEVNET_RPC="http://127.0.0.1:$port"
for _ in $(seq 100); do
  cast chain-id --rpc-url "$POT_DEVNET_RPC" >/dev/null 2>&1 && break
  sleep 0.1
done
"$venv/bin/ape" run ape_deploy --network ethereum:devnet:node --account TEST::0 --out "$tmp/deployment.json"
"$venv/bin/ape" run ape_place_order --network ethereum:devnet:node --account TEST::0 \
  --deployment "$tmp/deployment.json" --spec-cid bafy-ape-check-spec --test-cid bafy-ape-check-test \
  --salt 0x"$(printf '%064d' 7)" | tee "$tmp/order.txt"
book="$("$venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["31337"]["addresses"]["OrderBook"])' "$tmp/deployment.json")"
count="$(cast call "$book" 'orderCount()(uint256)' --rpc-url "$POT_DEVNET_RPC")"
if [ "$count" != "1" ] || ! grep -q '^order 1 placed' "$tmp/order.txt"; then
  echo "ape-check: the Ape scripts did not place order 1 (orderCount $count)" >&2
  exit 1
fi
client="$(cast call "$book" 'getOrder(uint256)(address,uint40,uint40,uint8,uint96,uint32,uint32,uint32,uint32,uint32,bytes32)' 1 --rpc-url "$POT_DEVNET_RPC" | head -1)"
expected="$(grep '^commitment ' "$tmp/order.txt" | cut -d' ' -f2)"
onchain="$(cast call "$book" 'getOrder(uint256)(address,uint40,uint40,uint8,uint96,uint32,uint32,uint32,uint32,uint32,bytes32)' 1 --rpc-url "$POT_DEVNET_RPC" | tail -1)"
if [ "$onchain" != "$expected" ] || [ "$client" != "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266" ]; then
  echo "ape-check: order 1 holds commitment $onchain from $client, expected $expected from TEST::0" >&2
  exit 1
fi
echo "  order 1 on-chain: client $client, commitment $onchain"
if [ -x .venv/bin/python ]; then  # the pot package reads Ape's deployment file and agrees on the commitment
  .venv/bin/python - "$tmp/deployment.json" "$onchain" "$client" <<'PY'
import sys
from pot.chain.deployment import Deployment
from pot.protocol.ids import test_commitment
d = Deployment.load(sys.argv[1], 31337)
assert d.parameters["threshold"] == 3, d.parameters
expected = "0x" + test_commitment(sys.argv[3], "bafy-ape-check-test", (7).to_bytes(32, "big")).hex()
assert sys.argv[2] == expected, (sys.argv[2], expected)
print("  pot reads the deployment file; the commitment is CONVENTIONS.md's")
PY
fi

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  if [ -n "$(git status --porcelain --untracked-files=all -- .build contracts/.cache)" ]; then
    echo "ape-check: Ape output is not gitignored (.build/, contracts/.cache/)" >&2
    exit 1
  fi
fi
echo "==> ape compile and scripts OK"
