#!/usr/bin/env bash
# Runs every test, after installing what the tests need: a venv with the Python dependencies and
# the Debian servers the tests start themselves (InfluxDB 1.x, VictoriaMetrics, Prometheus,
# Chromium), and systemd-analyze (the unit file test).
# As root it installs missing Debian packages; otherwise it prints the exact command to run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source contrib/dev/setup.sh
apt_install influxdb victoria-metrics chromium systemd prometheus nats-server
mkdir -p test-artifacts
.venv/bin/ruff check .
exec .venv/bin/pytest -q -ra "$@"
