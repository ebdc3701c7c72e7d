#!/usr/bin/env bash
# Train on a Cloud TPU VM (TPUStrategy via --tpu=local). Run ON the TPU VM, from the repo root:
#   bash launch/tpu_vm.sh gs://BUCKET/runs/pre10m gin/pretrain_10m.gin \
#       --gin_bindings="train.train_data='gs://BUCKET/scenes/train/*.tfrecord.gz'"
# For a pod slice, run the same command on every host (e.g. `gcloud compute tpus tpu-vm ssh
# NAME --worker=all --command="cd motion_sim && bash launch/tpu_vm.sh ..."`); every host reads a
# disjoint set of shards (tf.distribute input contexts) and writes to the same root_dir on GCS.
# Preemption: TPUStrategy + PreemptionCheckpointHandler saves a checkpoint on the maintenance
# notice; rerunning the same command continues from it.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 ROOT_DIR GIN_FILE [extra motion_sim.train flags...]" >&2; exit 2
fi
root_dir="$1"; gin_file="$2"; shift 2
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$(bash "$repo/tools/ensure_env.sh")"
cd "$repo"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-1}"
exec "$py" -m motion_sim.train --tpu=local --root_dir="$root_dir" --gin_file="$gin_file" "$@"
