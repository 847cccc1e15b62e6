#!/usr/bin/env bash
# CCAPI benchmark: direct-to-simulator vs CCAPI vs the LiteLLM proxy, on this machine.
#
#   bench/run.sh [--quick] [--no-profile] [--targets direct,ccapi,litellm] [--keep-logs]
#
# CCAPI_VENV=<venv> measures the CCAPI installed there instead of this checkout's
# .venv (BENCH_CCAPI_LABEL=<text> then names it in the results).
#
# Installs what it needs when missing (wrk from Debian, LiteLLM into
# bench/.litellm-venv, py-spy into bench/.tools-venv), then runs bench/bench.py,
# which starts every server itself on free 127.0.0.1 ports, measures, prints
# the table and writes bench/results/latest.json. Not part of the test suite.
# See docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${CCAPI_VENV:-.venv}
# 1.108.7 is the newest LiteLLM whose [proxy] extra resolves from PyPI here:
# 1.110.x needs litellm-proxy, 1.109.x and 1.108.8+ need litellm-proxy-extras /
# litellm-enterprise releases that PyPI does not serve (checked 2026-11-29).
LITELLM_VERSION=${LITELLM_VERSION:-1.108.7}
PYSPY_VERSION=0.4.3
LITELLM_VENV=bench/.litellm-venv
TOOLS_VENV=bench/.tools-venv

profile=1
for arg in "$@"; do
  [ "$arg" = "--no-profile" ] && profile=0
done

quiet_pip() {
  # pip's notes about local index folders that do not exist are noise here.
  "$@" 2> >(grep -v '^WARNING: Location' >&2)
}

# The project itself (same as scripts/dev: pinned by constraints.txt).
if [ ! -x "$VENV/bin/ccapi" ]; then
  echo "bench: installing CCAPI into $VENV" >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  quiet_pip "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e .
fi

# The load generator: wrk (C, epoll, one thread), from Debian.
if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: installing wrk (apt-get)" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench: wrk is missing and we are not root: apt-get install wrk" >&2
    exit 2
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

# LiteLLM, in its own virtualenv, pinned.
if [ ! -f "$LITELLM_VENV/.bench-litellm-$LITELLM_VERSION" ]; then
  echo "bench: installing litellm[proxy]==$LITELLM_VERSION into $LITELLM_VENV (about a minute)" >&2
  rm -rf "$LITELLM_VENV"
  "$PYTHON" -m venv "$LITELLM_VENV"
  quiet_pip "$LITELLM_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "litellm[proxy]==$LITELLM_VERSION"
  touch "$LITELLM_VENV/.bench-litellm-$LITELLM_VERSION"
fi

# py-spy (sampling profiler of the gateway under load), in its own virtualenv.
pyspy_args=()
if [ "$profile" = 1 ]; then
  if [ ! -x "$TOOLS_VENV/bin/py-spy" ]; then
    echo "bench: installing py-spy==$PYSPY_VERSION into $TOOLS_VENV" >&2
    "$PYTHON" -m venv "$TOOLS_VENV"
    quiet_pip "$TOOLS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "py-spy==$PYSPY_VERSION"
  fi
  pyspy_args=(--py-spy "$TOOLS_VENV/bin/py-spy")
fi

export BENCH_COMMAND="bench/run.sh $*"
exec "$VENV/bin/python" bench/bench.py --litellm "$LITELLM_VENV/bin/litellm" "${pyspy_args[@]}" "$@"
