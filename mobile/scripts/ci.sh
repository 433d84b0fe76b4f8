#!/usr/bin/env bash
# Every check of the mobile app, from a clean machine: install, type-check, lint, unit and screen
# tests (including the stale-client check), the web export, and the end-to-end test against a real
# `quorum run` in headless Chromium. Prints how long each step took.
set -euo pipefail
cd "$(dirname "$0")/.."
mobile="$(pwd)"
repo="$(cd .. && pwd)"
export CI="${CI:-true}" EXPO_NO_TELEMETRY=1

step() {
  local name="$1"
  shift
  local start=$SECONDS
  echo "== mobile: $name"
  "$@"
  echo "== mobile: $name took $((SECONDS - start))s"
}

install_chromium() {
  if [ -x /usr/bin/chromium ]; then return; fi
  # Debian's build; playwright-core drives it and never downloads a browser of its own.
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
}

install_api() {
  # The end-to-end test runs the real service with the repository's locked Python environment.
  if [ ! -f "$repo/.venv/.installed" ]; then make -C "$repo" install; fi
}

uv_path() {
  command -v uv 2>/dev/null || echo "$repo/.tools/bin/uv"
}

step "npm ci" npm ci --no-audit --no-fund
step "type-check" npx tsc --noEmit
step "lint" npx eslint . --max-warnings 0
# Jest runs the screen, client and limit tests, and test/apiTypes.test.ts, which fails when
# src/api/schema.d.ts is stale against ../openapi.json.
step "jest" npx jest --ci
step "web export" npx expo export --platform web --output-dir dist
step "chromium" install_chromium
step "API environment" install_api
step "end-to-end" env UV="$(uv_path)" node e2e/run.mjs
echo "== mobile: all checks passed in ${SECONDS}s"
