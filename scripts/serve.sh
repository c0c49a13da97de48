#!/usr/bin/env bash
# Set up and run the hub on a fresh machine: a venv with the package, Debian's
# redis-server when it is missing, then `hub serve` with one worker per CPU and
# the embedded redis-server it starts and owns. Extra arguments go to `hub serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
setup_system_packages redis-server
setup_venv
exec .venv/bin/hub serve "$@"
