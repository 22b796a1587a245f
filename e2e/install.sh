#!/usr/bin/env bash
# Installs what the e2e tests need: Debian's chromium (when
# /usr/bin/chromium is missing; needs root) and, from package-lock.json,
# playwright-core, graphql-ws and ws. Safe to run again. Called by `make
# test-e2e` and .ci/run.
set -euo pipefail

cd "$(dirname "$0")"

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "e2e/install.sh: $chromium is missing; install Debian's chromium as root (apt-get install chromium)" >&2
		exit 1
	fi
	echo "e2e/install.sh: installing chromium" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq chromium >/dev/null
fi
# (Debian's wrapper script may print a harmless "[: unexpected operator".)
"$chromium" --version 2>/dev/null || true

# playwright-core downloads no browser: it drives the one above.
npm ci --no-audit --no-fund --loglevel=error
