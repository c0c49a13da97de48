#!/usr/bin/env bash
# Set up and run the hub on a fresh machine: a venv with the package, Debian's
# redis-server when it is missing, then `hub serve` with one worker per CPU and
# the embedded redis-server it starts and owns. Extra arguments go to `hub serve`.
# The venv gets the `bench` extra too, so `.venv/bin/hub bench` works from the same checkout;
# not the `plot` one (matplotlib, for a server's machine): without it, `hub bench --plot` writes
# the run's JSON and says how to draw it later with `hub bench plot RUN.json`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
setup_system_packages redis-server
setup_venv bench
exec .venv/bin/hub serve "$@"
