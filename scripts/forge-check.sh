#!/usr/bin/env bash
# The contracts as a Foundry project (foundry.toml), offline: forge build, forge test (unit, fuzz
# and invariant tests in test/), and the committed gas snapshot (.gas-snapshot) checked.
#   - forge: node_modules/.bin/forge (npm @foundry-rs/forge-linux-amd64, pinned in package.json)
#   - solc: tools/solc (the pinned solc-js behind a native-solc command line), never downloaded
#   - OpenZeppelin: node_modules/@openzeppelin/contracts
# Also checks that forge's bytecode equals the committed artifacts of `pot contracts compile`
# (offchain/pot/chain/artifacts/): same compiler, same settings, same contracts.
# Needs `npm ci` first (scripts/setup.sh does). Output goes to out/ and cache/ (gitignored).
# After a deliberate gas change (or a new unit test):
#   node_modules/.bin/forge snapshot --no-match-test '^testFuzz_' --no-match-path 'test/invariant/*'
# then review `git diff .gas-snapshot` and commit it.
set -euo pipefail
cd "$(dirname "$0")/.."

forge=node_modules/.bin/forge
for need in "$forge" node_modules/solc/package.json node_modules/@openzeppelin/contracts/token/ERC20/ERC20.sol; do
  if [ ! -e "$need" ]; then
    echo "forge-check: $need missing: run \`npm ci\` first (scripts/setup.sh does)" >&2
    exit 2
  fi
done

# No network, whatever foundry.toml or the caller's environment say; no compiler download.
export FOUNDRY_OFFLINE=true
export FOUNDRY_AUTO_DETECT_SOLC=false
export FOUNDRY_PROFILE="${FOUNDRY_PROFILE:-default}"
# Only the unit tests are snapshotted: fuzz results depend on the run count, and the invariant
# harness's gas on the handler, not on the contracts.
SNAPSHOT_FILTER=(--no-match-test '^testFuzz_' --no-match-path 'test/invariant/*')

echo "==> forge build (solc 0.8.37 via tools/solc, offline)"
"$forge" build

echo "==> forge bytecode == pot contracts compile artifacts"
python3 - <<'PY'
import json
import pathlib
import sys

bad = []
for name in ("PoTToken", "StakeRegistry", "OrderBook", "ChallengeManager", "RewardMultisig"):
    ours = json.loads(pathlib.Path(f"offchain/pot/chain/artifacts/{name}.json").read_text())
    forge = json.loads(pathlib.Path(f"out/{name}.sol/{name}.json").read_text())
    for key in ("bytecode", "deployedBytecode"):
        if ours[key] != forge[key]["object"]:
            bad.append(f"{name}.{key}")
if bad:
    sys.exit("forge-check: forge and `pot contracts compile` disagree on " + ", ".join(bad) + ":\n"
             "  stale artifacts? run `.venv/bin/pot contracts compile`; otherwise foundry.toml's\n"
             "  compiler settings drifted from offchain/pot/chain/compile.py's SETTINGS")
print("  5 contracts, identical init and runtime code")
PY

echo "==> forge test"
"$forge" test

echo "==> forge snapshot --check (.gas-snapshot)"
if ! "$forge" snapshot "${SNAPSHOT_FILTER[@]}" --check; then
  echo "forge-check: gas differs from .gas-snapshot. If the change is intended:" >&2
  echo "  node_modules/.bin/forge snapshot --no-match-test '${SNAPSHOT_FILTER[1]}' --no-match-path '${SNAPSHOT_FILTER[3]}'" >&2
  echo "  then review \`git diff .gas-snapshot\` and commit it" >&2
  exit 1
fi
echo "==> forge OK"
