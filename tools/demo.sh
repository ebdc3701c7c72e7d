#!/usr/bin/env bash
# The main job on the bundled sample scenes (a few minutes on 2 CPU cores):
#   1. preprocess motion_sim/data/sample/ (Scenario protos, tf.Example, GPUDrive JSON) -> scene shards
#   2. BC pre-training of the tiny policy (gin/demo_pretrain.gin)
#   3. REINFORCE fine-tuning from that checkpoint (gin/demo_finetune.gin)
# Leaves checkpoints, TensorBoard events and operative_config.gin under $RUN_DIR (default
# runs/demo; `tensorboard --logdir runs/demo`). Rerunning continues / skips finished stages.
# Extra arguments go to both training commands, e.g. --gin_bindings=train.max_steps=50.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$(bash "$root/tools/ensure_env.sh")"
cd "$root"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
run_dir="${RUN_DIR:-runs/demo}"
data="$run_dir/data"
sample="motion_sim/data/sample"
start=$(date +%s)

echo "== 1/3 preprocess the bundled scenes -> $data"
"$py" -m motion_sim.data.preprocess --input="$sample/*scenario*.tfrecord" \
  --output_dir="$data/scenario" --format=scenario
"$py" -m motion_sim.data.preprocess --input="$sample/motion_data_one_example.tfrecord" \
  --output_dir="$data/example" --format=example
"$py" -m motion_sim.data.preprocess --input="$sample/*.json" \
  --output_dir="$data/gpudrive" --format=gpudrive
shards="$data/*/*.tfrecord.gz"

echo "== 2/3 BC pre-training (tiny policy) -> $run_dir/pretrain"
"$py" -m motion_sim.train --root_dir="$run_dir/pretrain" --gin_file=gin/demo_pretrain.gin \
  --gin_bindings="DEMO_DATA='$shards'" "$@"

echo "== 3/3 RL fine-tuning from the BC checkpoint -> $run_dir/finetune"
"$py" -m motion_sim.train --root_dir="$run_dir/finetune" --gin_file=gin/demo_finetune.gin \
  --gin_bindings="DEMO_DATA='$shards'" \
  --gin_bindings="PRETRAINED_CHECKPOINT='$run_dir/pretrain'" "$@"

echo "== done in $(( $(date +%s) - start )) s: checkpoints, TensorBoard events and"
echo "   operative_config.gin in $run_dir/pretrain and $run_dir/finetune"
