#!/usr/bin/env bash
# The README's test command: builds the venv if needed, then runs the test suite.
# Slow tests (marked `slow`) run too when CI=true or MOTION_SIM_SLOW=1.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$(bash "$root/tools/ensure_env.sh")"
cd "$root"
marker=(-m "not slow")
if [[ "${CI:-}" == "true" || "${MOTION_SIM_SLOW:-0}" == "1" ]]; then marker=(); fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec "$py" -m pytest "${marker[@]}" "$@"
