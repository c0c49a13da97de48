#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh machine, then run it:
# a venv with the package and its test extras, Debian's redis-server and the
# other real servers the tests drive, then pytest, ruff and mypy.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
setup_system_packages redis-server redis-tools openssl haproxy nginx-light chromium docker-compose systemd prometheus iproute2 iptables tsung libxml2-utils
setup_venv test
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
.venv/bin/python benchmarks/load_tool_install.py  # Artillery (npm) for the load-tool comparison test
.venv/bin/ruff check hub tests benchmarks examples
.venv/bin/ruff format --check hub tests benchmarks examples
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
