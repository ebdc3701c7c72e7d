#!/usr/bin/env bash
# The README's test command: builds the venv if needed, then runs the test suite.
# Default: fast tests only. CI=true or MOTION_SIM_SLOW=1 adds the `slow` ones (minutes);
# MOTION_SIM_LONG=1 runs everything, including the `long` learning check (10-25 min).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$(bash "$root/tools/ensure_env.sh")"
cd "$root"
marker=(-m "not slow and not long")
if [[ "${CI:-}" == "true" || "${MOTION_SIM_SLOW:-0}" == "1" ]]; then marker=(-m "not long"); fi
if [[ "${MOTION_SIM_LONG:-0}" == "1" ]]; then marker=(); fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# Which tiers run is said up front; tests/conftest.py counts each tier's tests at the end.
echo "test.sh: pytest ${marker[*]:-(all tiers)}" >&2
exec "$py" -m pytest "${marker[@]}" "$@"
