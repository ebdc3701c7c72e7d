#!/usr/bin/env bash
# Multi-worker GPU/CPU training (MultiWorkerMirroredStrategy, chosen automatically when TF_CONFIG
# names more than one task). Run once per worker with that worker's index:
#   WORKERS="host1:12345,host2:12345" bash launch/multi_worker.sh 0 /shared/runs/pre1m \
#       gin/pretrain_1m.gin --gin_bindings="train.train_data='/data/scenes/*.tfrecord.gz'"
#   WORKERS="host1:12345,host2:12345" bash launch/multi_worker.sh 1 /shared/runs/pre1m ...
# ROOT_DIR must be shared storage (GCS or a network file system): worker 0 is the chief and writes
# summaries / operative config; checkpoints are written collectively, and each worker keeps its
# data position in ROOT_DIR/checkpoints/data_worker_<index>/. train.batch_size is GLOBAL.
# SIGTERM (or the platform's preemption notice) to any worker: every worker checkpoints at the same
# step and exits with code 42; re-running the same commands resumes exactly
# (tests/learner/test_multi_worker.py runs this with 2 workers on localhost).
set -euo pipefail
if [[ $# -lt 3 || -z "${WORKERS:-}" ]]; then
  echo "usage: WORKERS=h1:port,h2:port $0 TASK_INDEX ROOT_DIR GIN_FILE [flags...]" >&2; exit 2
fi
index="$1"; root_dir="$2"; gin_file="$3"; shift 3
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$(bash "$repo/tools/ensure_env.sh")"
workers_json="$("$py" -c 'import json,sys; print(json.dumps(sys.argv[1].split(",")))' "$WORKERS")"
export TF_CONFIG="{\"cluster\": {\"worker\": $workers_json}, \"task\": {\"type\": \"worker\", \"index\": $index}}"
cd "$repo"
exec "$py" -m motion_sim.train --root_dir="$root_dir" --gin_file="$gin_file" "$@"
