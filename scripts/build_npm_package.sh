#!/usr/bin/env bash
# Regenerates packages/contracts/ (the npm package @pot-network/contracts) from the committed ABI
# artifacts (offchain/pot/chain/artifacts/, with NatSpec) and the public deployment files
# deployments/*.json: `pot contracts export`. tests/chain/test_export.py fails when the committed
# folder differs from what this writes, so run it after `pot contracts compile` changed an artifact
# or a deployment file was added, and commit the result.
#   bash scripts/build_npm_package.sh                 regenerate packages/contracts/
#   bash scripts/build_npm_package.sh --pack DIR      and write DIR/pot-network-contracts-<version>.tgz
set -euo pipefail
cd "$(dirname "$0")/.."
args=(--out packages/contracts)
for f in deployments/*.json; do
  [ -e "$f" ] && args+=(--deployment "$f")
done
.venv/bin/pot contracts export "${args[@]}"
if [ "${1:-}" = "--pack" ]; then
  dest="${2:?--pack needs a folder}"
  mkdir -p "$dest"
  npm pack ./packages/contracts --pack-destination "$dest" --loglevel=error
fi
