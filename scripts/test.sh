#!/usr/bin/env bash
# The README's test command (`npm test`): set up what is missing (scripts/setup.sh), typecheck, then run every test.
# Extra arguments go to node's test runner in place of the default glob, e.g. `npm test -- test/parse/*.test.ts`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH"
tsc --noEmit -p .
if (($#)); then files=("$@"); else files=('test/**/*.test.ts'); fi
exec node --test --test-concurrency=1 --test-timeout=300000 "${files[@]}"
