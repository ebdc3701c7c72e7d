#!/usr/bin/env bash
# Creates (once) the project virtualenv .venv from env/requirements.lock and prints its python.
# The lock is installed with --no-deps on purpose: the official pins of tf-agents 0.17 and
# waymo-open-dataset 1.6.7 conflict on paper (tfp, gym, setuptools) but this exact set imports
# and runs; the resolver would refuse it. A stamp holding the lock's hash makes re-runs free and
# re-installs when the lock changes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MOTION_SIM_VENV:-$root/.venv}"
lock="$root/env/requirements.lock"
py="${PYTHON:-python3.11}"
stamp="$venv/.lock-sha256"
want="$(sha256sum "$lock" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv/bin/python"; exit 0
fi
command -v "$py" >/dev/null || { echo "ensure_env: $py not found (motion_sim needs Python 3.11)" >&2; exit 1; }
echo "ensure_env: installing $lock into $venv (first run takes a few minutes)" >&2
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade "pip==23.2.1" >&2
"$venv/bin/python" -m pip install -q --no-deps -r "$lock" >&2
# The project itself goes on sys.path through a .pth file: an editable install would need
# wheel/setuptools build steps for no gain, and the repo root is the package root.
"$venv/bin/python" -c 'import sysconfig,sys; open(sysconfig.get_paths()["purelib"]+"/motion_sim_repo.pth","w").write(sys.argv[1]+"\n")' "$root"
"$venv/bin/python" "$root/tools/check_imports.py" >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
