#!/usr/bin/env bash
# Runs the demo: a simulated farm on loopback (127.77.x.y) and the agent with its web UI polling
# it. No hardware, no external server. Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
WEBBO_EXTRAS="${WEBBO_EXTRAS:-demo}" source contrib/dev/setup.sh
exec .venv/bin/webbo demo "$@"
