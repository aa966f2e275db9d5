#!/usr/bin/env bash
# Copies the built browser files the aggregator serves offline from node_modules (pinned in
# package.json / package-lock.json) into the Python package: Swagger UI for /docs. Run it after
# changing the swagger-ui-dist pin; tests/api/test_explorer_api.py checks the copies match.
set -euo pipefail
cd "$(dirname "$0")/.."
src=node_modules/swagger-ui-dist
dst=offchain/pot/api/static/swagger
[ -f "$src/package.json" ] || { echo "no $src: run npm ci first" >&2; exit 1; }
for f in swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE; do
  cp "$src/$f" "$dst/$f"
done
node -e 'process.stdout.write(require("./'"$src"'/package.json").version + "\n")' > "$dst/VERSION"
echo "vendored swagger-ui-dist $(cat "$dst/VERSION") into $dst"
