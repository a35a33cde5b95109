#!/bin/sh
# Renders every FHIR resource vitalgate emits (fhir_render_all) and validates them with the
# independent validator in this folder (validate.mjs, @medplum/core). The validator's npm
# packages are installed with `npm ci` from package-lock.json into WORK/validator, again only
# when the lock file changed.
# usage: run_validation.sh RENDER_TOOL WORK_DIR
set -eu
render=$1
work=$2
src=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null || { echo "run_validation: node is not installed (scripts/install-deps.sh)" >&2; exit 1; }
mkdir -p "$work/validator"
cp "$src/package.json" "$src/package-lock.json" "$src/validate.mjs" "$work/validator/"
if ! cmp -s "$src/package-lock.json" "$work/validator/.installed-lock" || [ ! -d "$work/validator/node_modules/@medplum/core" ]; then
  (cd "$work/validator" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error)
  cp "$src/package-lock.json" "$work/validator/.installed-lock"
fi
rm -rf "$work/out"
"$render" "$work/out"
exec node "$work/validator/validate.mjs" "$work/out"
