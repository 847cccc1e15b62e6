#!/usr/bin/env bash
# The accounts-and-billing benchmark (see bench/billing.py): the master key vs
# an account key on SQLite vs on PostgreSQL + Redis, in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e . 2>/dev/null
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
exec .venv/bin/python bench/billing.py "$@"
