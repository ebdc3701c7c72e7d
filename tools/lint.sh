#!/usr/bin/env bash
# Lint and format check with ruff (rules and their reasons: pyproject.toml [tool.ruff]).
# `bash tools/lint.sh` checks both and fails on either; `bash tools/lint.sh --fix` applies ruff's
# safe fixes and formats the tree.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$(bash "$root/tools/ensure_env.sh")"
ruff="$(dirname "$py")/ruff"
cd "$root"
if [[ "${1:-}" == "--fix" ]]; then
  "$ruff" check --fix .
  "$ruff" format .
  exit 0
fi
status=0
"$ruff" check . || status=1
"$ruff" format --check . || status=1
exit "$status"
