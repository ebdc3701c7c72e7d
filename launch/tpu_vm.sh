#!/usr/bin/env bash
# Cloud TPU VM / pod slice launcher, run from a workstation with gcloud. Each ACTION is one
# step; the script does exactly the actions named, in the order given, and nothing else
# (in particular it creates a TPU only when `create` is named, and deletes one only on `delete`).
#
#   bash launch/tpu_vm.sh --name=ms-v4 --zone=us-central2-b --accelerator_type=v4-32 \
#       --root_dir=gs://BUCKET/runs/pre10m --gin_file=gin/pretrain_10m.gin \
#       --train_data='gs://BUCKET/scenes/train/*.tfrecord.gz' create setup train tensorboard
#   bash launch/tpu_vm.sh --name=ms-v4 --zone=us-central2-b --accelerator_type=v4-32 \
#       --logs_dir=/tmp/ms-v4-logs logs delete
#
# --dry_run prints every command instead of running it (tests/launch/test_launch_scripts.py
# runs every action that way). Flags after `--` go to motion_sim.train unchanged.
#
# Runtime: the lock pins TensorFlow 2.13, so the default runtime is tpu-vm-tf-2.13.0 for one
# host and tpu-vm-tf-2.13.0-pod for a multi-host slice (`-pod`). One host trains with
# --tpu=local; on a pod slice the TF program runs on worker 0 only and reaches every host's
# TPU through TPUClusterResolver(tpu=NAME) (TPU_LOAD_LIBRARY=0 keeps worker 0 from holding the
# local chips itself); `setup` still installs the project on every worker. Run dir and data
# live on gs:// so every host and TensorBoard read the same files. Not run against a real TPU
# from this repository: the commands follow the Cloud TPU TF 2.13 documentation.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: launch/tpu_vm.sh --name=NAME --zone=ZONE [flags] ACTION [ACTION ...] [-- TRAIN_FLAGS]

actions (run in the order given; nothing happens that is not named):
  create       create the TPU VM / pod slice (gcloud compute tpus tpu-vm create)
  setup        copy this checkout (git archive HEAD) to every worker and build .venv there
  train        start motion_sim.train in the background (worker 0; --tpu=local on one host,
               --tpu=NAME on a pod slice); its log is ~/motion_sim/logs/train.log
  tensorboard  start TensorBoard on worker 0 (port 6006) and print the ssh tunnel command
  logs         copy every worker's ~/motion_sim/logs into --logs_dir/worker_<i>/
  delete       delete the TPU (gcloud ... delete --quiet)

flags:
  --name=NAME               TPU name (required)
  --zone=ZONE               zone, e.g. us-central2-b (required)
  --project=PROJECT         gcloud project (default: gcloud's configured one)
  --accelerator_type=TYPE   v4-8 (one host), v4-32 (4 hosts), v5litepod-16, ... (default v4-8)
  --runtime_version=V       default tpu-vm-tf-2.13.0, or tpu-vm-tf-2.13.0-pod for multi-host
  --spot                    create a Spot TPU (cheaper, preemptible; train resumes on rerun)
  --root_dir=gs://...       run directory (train, tensorboard)
  --gin_file=FILE           gin file, repeatable (train)
  --train_data=GLOB         scene shards on gs:// -> train.train_data (train)
  --pretrained=gs://...     PRETRAINED_CHECKPOINT for fine-tuning (train)
  --num_workers=N           hosts of the slice (default: from --accelerator_type)
  --logs_dir=DIR            local directory for `logs`
  --dry_run                 print the commands, run nothing
  -h, --help                this text
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

die() { echo "tpu_vm.sh: error: $*" >&2; exit 2; }

name="" zone="" project="" accel="v4-8" runtime="" spot=0 root_dir="" train_data=""
pretrained="" num_workers="" logs_dir="" dry_run=0
gin_files=() actions=() train_flags=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --name=*) name="${1#*=}" ;;
    --zone=*) zone="${1#*=}" ;;
    --project=*) project="${1#*=}" ;;
    --accelerator_type=*) accel="${1#*=}" ;;
    --runtime_version=*) runtime="${1#*=}" ;;
    --spot) spot=1 ;;
    --root_dir=*) root_dir="${1#*=}" ;;
    --gin_file=*) gin_files+=("${1#*=}") ;;
    --train_data=*) train_data="${1#*=}" ;;
    --pretrained=*) pretrained="${1#*=}" ;;
    --num_workers=*) num_workers="${1#*=}" ;;
    --logs_dir=*) logs_dir="${1#*=}" ;;
    --dry_run) dry_run=1 ;;
    --) shift; train_flags=("$@"); break ;;
    create|setup|train|tensorboard|logs|delete) actions+=("$1") ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
  shift
done
[[ ${#actions[@]} -gt 0 ]] || { usage >&2; die "name at least one action"; }
[[ -n "$name" && -n "$zone" ]] || die "--name and --zone are required"

# Hosts of a slice: the number after the dash counts TensorCores on v2-v4 / v5p (8 per host)
# and chips on v5e (v5litepod: up to 8 on one host, 4 per host beyond).
suffix="${accel##*-}"
[[ "$suffix" =~ ^[0-9]+$ ]] || die "--accelerator_type=$accel: expected TYPE-N, e.g. v4-8"
if [[ -z "$num_workers" ]]; then
  if [[ "$accel" == v5litepod-* ]]; then
    if (( suffix <= 8 )); then num_workers=1; else num_workers=$(( suffix / 4 )); fi
  else
    num_workers=$(( suffix <= 8 ? 1 : suffix / 8 ))
  fi
fi
pod=$(( num_workers > 1 ))
if [[ -z "$runtime" ]]; then
  runtime="tpu-vm-tf-2.13.0"
  if (( pod )); then runtime="tpu-vm-tf-2.13.0-pod"; fi
fi
where=(--zone="$zone")
[[ -n "$project" ]] && where+=(--project="$project")
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
remote_dir="motion_sim"  # under the ssh user's home on every worker

# Runs (or, with --dry_run, prints) one command; the printed form is shell-quoted so it can be
# pasted as is.
run() {
  if (( dry_run )); then
    local out="" w
    for w in "$@"; do out+="${out:+ }$(q "$w")"; done
    echo "$out"
  else
    "$@"
  fi
}

ssh_cmd() {  # ssh_cmd WORKER COMMAND
  run gcloud compute tpus tpu-vm ssh "$name" "${where[@]}" --worker="$1" --command="$2"
}

do_create() {
  local extra=()
  (( spot )) && extra+=(--spot)
  run gcloud compute tpus tpu-vm create "$name" "${where[@]}" \
    --accelerator-type="$accel" --version="$runtime" "${extra[@]}"
}

do_setup() {
  local archive
  archive="${TMPDIR:-/tmp}/motion_sim-$name.tar.gz"
  run git -C "$repo" archive --format=tar.gz -o "$archive" HEAD
  run gcloud compute tpus tpu-vm scp "$archive" "$name:motion_sim.tar.gz" "${where[@]}" --worker=all
  # Python 3.11 (the lock's) from deadsnakes when the image lacks it; then the project venv.
  ssh_cmd all "set -e; mkdir -p $remote_dir/logs; tar xzf motion_sim.tar.gz -C $remote_dir; \
command -v python3.11 >/dev/null || { sudo add-apt-repository -y ppa:deadsnakes/ppa && \
sudo apt-get update -q && sudo apt-get install -y -q python3.11 python3.11-venv; }; \
bash $remote_dir/tools/ensure_env.sh"
}

do_train() {
  [[ -n "$root_dir" && ${#gin_files[@]} -gt 0 && -n "$train_data" ]] \
    || die "train needs --root_dir, --gin_file and --train_data"
  [[ "$root_dir" == gs://* ]] || die "--root_dir must be on gs:// (every host and TensorBoard read it)"
  local tpu="local" env="" args
  if (( pod )); then tpu="$name"; env="TPU_LOAD_LIBRARY=0 "; fi
  args="--tpu=$tpu --root_dir=$(q "$root_dir")"
  for g in "${gin_files[@]}"; do args+=" --gin_file=$(q "$g")"; done
  args+=" --gin_bindings=$(q "train.train_data=\"$train_data\"")"
  if [[ -n "$pretrained" ]]; then
    args+=" --gin_bindings=$(q "PRETRAINED_CHECKPOINT=\"$pretrained\"")"
  fi
  for f in "${train_flags[@]}"; do args+=" $(q "$f")"; done
  ssh_cmd 0 "cd $remote_dir && ${env}nohup .venv/bin/python -m motion_sim.train $args \
> logs/train.log 2>&1 < /dev/null & echo started motion_sim.train, log: $remote_dir/logs/train.log"
}

do_tensorboard() {
  [[ -n "$root_dir" ]] || die "tensorboard needs --root_dir"
  ssh_cmd 0 "cd $remote_dir && nohup .venv/bin/tensorboard --logdir=$(q "$root_dir") \
--port=6006 > logs/tensorboard.log 2>&1 < /dev/null &"
  echo "# TensorBoard on worker 0: open a tunnel, then http://localhost:6006"
  echo "gcloud compute tpus tpu-vm ssh $name ${where[*]} --worker=0 -- -N -L 6006:localhost:6006"
}

do_logs() {
  [[ -n "$logs_dir" ]] || die "logs needs --logs_dir"
  local i
  for (( i = 0; i < num_workers; i++ )); do
    run mkdir -p "$logs_dir/worker_$i"
    run gcloud compute tpus tpu-vm scp --recurse "$name:$remote_dir/logs" \
      "$logs_dir/worker_$i" "${where[@]}" --worker="$i"
  done
}

do_delete() {
  run gcloud compute tpus tpu-vm delete "$name" "${where[@]}" --quiet
}

for action in "${actions[@]}"; do
  echo "# $action ($accel, $num_workers host(s), runtime $runtime)" >&2
  "do_$action"
done
