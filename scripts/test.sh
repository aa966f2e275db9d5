#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh --test) and runs the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/protocol -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
# Debian's chromium for the explorer's browser tests (root: apt-get; otherwise they skip locally)
bash scripts/install-browser.sh
# js-ipfs: the offline IPFS node the KuboStore tests talk to (committed lockfile; ~1-3 min once)
bash tools/ipfs/install.sh
# Ape in a venv of its own (its pins clash with web3 8): proves `ape compile` works offline.
# POT_SKIP_APE=1 skips it (it needs ~400 MB and ~1 min the first time).
if [ "${POT_SKIP_APE:-0}" != "1" ]; then
  bash scripts/ape-check.sh
fi
# The contracts as a Foundry project: forge build, forge test (fuzz and invariant campaigns),
# forge snapshot --check, all offline (~1-2 min). POT_SKIP_FORGE=1 skips it.
if [ "${POT_SKIP_FORGE:-0}" != "1" ]; then
  bash scripts/forge-check.sh
fi
set +e
.venv/bin/python -m pytest -n 2 --dist loadfile -p no:cacheprovider --durations=30 "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
