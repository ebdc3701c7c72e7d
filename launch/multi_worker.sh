#!/usr/bin/env bash
# Multi-worker GPU (or CPU) training: MultiWorkerMirroredStrategy, which motion_sim.train picks
# when TF_CONFIG names more than one task. This script writes each worker's TF_CONFIG:
#
#   # on each host, with its own index (0 is the chief):
#   bash launch/multi_worker.sh --workers=host1:12345,host2:12345 --task_index=0 \
#       --root_dir=/shared/runs/pre10m --gin_file=gin/pretrain_10m.gin \
#       --train_data='/data/scenes/*.tfrecord.gz'
#   # or start every worker from one machine over ssh (same checkout path on every host):
#   bash launch/multi_worker.sh --workers=host1:12345,host2:12345 --all_via_ssh ...
#
# --dry_run prints the commands (with their TF_CONFIG) instead of running them. Flags after
# `--` go to motion_sim.train unchanged.
#
# ROOT_DIR must be shared storage (GCS or a network file system): worker 0 is the chief and
# writes summaries / operative config; checkpoints are written collectively, and each worker
# keeps its data position in ROOT_DIR/checkpoints/data_worker_<index>/. train.batch_size is
# GLOBAL. Every GPU of a host is a replica (8 GPUs x 2 hosts = 16 replicas). SIGTERM (or the
# platform's preemption notice) to any worker: every worker checkpoints at the same step and
# exits with code 42; re-running the same commands resumes exactly
# (tests/learner/test_multi_worker.py runs 2 workers on localhost).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: launch/multi_worker.sh --workers=H1:PORT,H2:PORT,... (--task_index=I | --all_via_ssh)
           --root_dir=DIR --gin_file=FILE [--train_data=GLOB] [--pretrained=RUN] [--dry_run]
           [-- TRAIN_FLAGS]

  --workers=LIST     every worker's host:port, in task order (worker 0 is the chief)
  --task_index=I     run worker I here (exec motion_sim.train with its TF_CONFIG)
  --all_via_ssh      start every worker over ssh in the background (log:
                     ~/motion_sim_worker_<i>.log on each host); the repo must be at this
                     checkout's path on every host
  --root_dir=DIR     shared run directory (GCS or network file system)
  --gin_file=FILE    gin file, repeatable
  --train_data=GLOB  scene shards -> train.train_data
  --pretrained=RUN   PRETRAINED_CHECKPOINT for fine-tuning
  --dry_run          print the commands, run nothing
  -h, --help         this text
EOF
}

# Shell-quotes one word for printing / remote shells: bare when safe, else in single quotes.
q() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

die() { echo "multi_worker.sh: error: $*" >&2; exit 2; }

workers="" task_index="" all_via_ssh=0 root_dir="" train_data="" pretrained="" dry_run=0
gin_files=() train_flags=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --workers=*) workers="${1#*=}" ;;
    --task_index=*) task_index="${1#*=}" ;;
    --all_via_ssh) all_via_ssh=1 ;;
    --root_dir=*) root_dir="${1#*=}" ;;
    --gin_file=*) gin_files+=("${1#*=}") ;;
    --train_data=*) train_data="${1#*=}" ;;
    --pretrained=*) pretrained="${1#*=}" ;;
    --dry_run) dry_run=1 ;;
    --) shift; train_flags=("$@"); break ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
  shift
done
[[ -n "$workers" ]] || die "--workers is required"
[[ -n "$root_dir" && ${#gin_files[@]} -gt 0 ]] || die "--root_dir and --gin_file are required"
if [[ -n "$task_index" && $all_via_ssh -eq 1 ]] || [[ -z "$task_index" && $all_via_ssh -eq 0 ]]; then
  die "give exactly one of --task_index / --all_via_ssh"
fi
IFS=',' read -r -a hosts <<< "$workers"
for h in "${hosts[@]}"; do
  [[ "$h" =~ ^[^:]+:[0-9]+$ ]] || die "--workers: '$h' is not host:port"
done
if [[ -n "$task_index" ]]; then
  if ! [[ "$task_index" =~ ^[0-9]+$ ]] || (( task_index >= ${#hosts[@]} )); then
    die "--task_index=$task_index: must be in [0, ${#hosts[@]})"
  fi
fi
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

tf_config() {  # tf_config INDEX -> the worker's TF_CONFIG JSON
  local list="" h
  for h in "${hosts[@]}"; do list+="${list:+, }\"$h\""; done
  printf '{"cluster": {"worker": [%s]}, "task": {"type": "worker", "index": %d}}' "$list" "$1"
}

train_args=(--root_dir="$root_dir")
for g in "${gin_files[@]}"; do train_args+=(--gin_file="$g"); done
[[ -n "$train_data" ]] && train_args+=(--gin_bindings="train.train_data=\"$train_data\"")
[[ -n "$pretrained" ]] && train_args+=(--gin_bindings="PRETRAINED_CHECKPOINT=\"$pretrained\"")
train_args+=("${train_flags[@]}")

if [[ -n "$task_index" ]]; then
  config="$(tf_config "$task_index")"
  if (( dry_run )); then
    line="cd $(q "$repo") && TF_CONFIG=$(q "$config") $(q "$repo/.venv/bin/python") -m motion_sim.train"
    for a in "${train_args[@]}"; do line+=" $(q "$a")"; done
    echo "$line"
    exit 0
  fi
  py="$(bash "$repo/tools/ensure_env.sh")"
  cd "$repo"
  export TF_CONFIG="$config"
  exec "$py" -m motion_sim.train "${train_args[@]}"
fi

for i in "${!hosts[@]}"; do
  host="${hosts[$i]%%:*}"
  remote="cd $(q "$repo") && TF_CONFIG=$(q "$(tf_config "$i")") \
nohup \"\$(bash tools/ensure_env.sh)\" -m motion_sim.train"
  for a in "${train_args[@]}"; do remote+=" $(q "$a")"; done
  remote+=" > ~/motion_sim_worker_$i.log 2>&1 < /dev/null &"
  if (( dry_run )); then
    echo "ssh $(q "$host") $(q "$remote")"
  else
    # The command is built here on purpose (client-side expansion is what we want).
    # shellcheck disable=SC2029
    ssh "$host" "$remote"
    echo "started worker $i on $host (log: $host:~/motion_sim_worker_$i.log)"
  fi
done
