#!/usr/bin/env bash
# The main job on the bundled sample scenes (about 10 minutes on 2 busy CPU cores):
#   1. preprocess 3 of the 4 bundled scenes (a Scenario proto, the tf.Example, the GPUDrive
#      JSON) -> scene shards; the 4th (Scenario proto 637f20cafde22ff8) is held out
#   2. BC pre-training of the tiny policy (gin/demo_pretrain.gin)
#   3. REINFORCE fine-tuning from that checkpoint (gin/demo_finetune.gin)
#   4. SavedModel export of both policies (export.export_model)
#   5. held-out table: constant velocity, BC, BC + RL on the held-out scene, WOSAC 2025 metrics
#      (fast backend, export.report), after asserting that no training scene has its id
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

heldout="$sample/motion_data_one_scenario.tfrecord"
echo "== 1/5 preprocess the bundled training scenes -> $data (held out: $heldout)"
"$py" -m motion_sim.data.preprocess --input="$sample/womd_scenario_input.tfrecord" \
  --output_dir="$data/scenario" --format=scenario
"$py" -m motion_sim.data.preprocess --input="$sample/motion_data_one_example.tfrecord" \
  --output_dir="$data/example" --format=example
"$py" -m motion_sim.data.preprocess --input="$sample/*.json" \
  --output_dir="$data/gpudrive" --format=gpudrive
shards="$data/*/*.tfrecord.gz"

echo "== 2/5 BC pre-training (tiny policy) -> $run_dir/pretrain"
"$py" -m motion_sim.train --root_dir="$run_dir/pretrain" --gin_file=gin/demo_pretrain.gin \
  --gin_bindings="DEMO_DATA='$shards'" "$@"

echo "== 3/5 RL fine-tuning from the BC checkpoint -> $run_dir/finetune"
"$py" -m motion_sim.train --root_dir="$run_dir/finetune" --gin_file=gin/demo_finetune.gin \
  --gin_bindings="DEMO_DATA='$shards'" \
  --gin_bindings="PRETRAINED_CHECKPOINT='$run_dir/pretrain'" "$@"

echo "== 4/5 SavedModel export of both policies -> $run_dir/models"
for run in pretrain finetune; do
  rm -rf "$run_dir/models/$run"  # re-exported: the run may have trained further since
  "$py" -m export.export_model --root_dir="$run_dir/$run" --output_dir="$run_dir/models/$run" \
    --num_rollouts=32
done

echo "== 5/5 held-out table -> $run_dir/heldout"
"$py" -m motion_sim.experiment_data --train_shards="$shards" --heldout="$heldout" \
  --output="$run_dir/heldout/split.json"
"$py" -m export.report --scenarios="$heldout" --output="$run_dir/heldout" \
  --baselines=constant_velocity --saved_model="BC=$run_dir/models/pretrain" \
  --saved_model="BC + RL=$run_dir/models/finetune" --config=2025 --backend=fast

echo "== done in $(( $(date +%s) - start )) s: checkpoints, TensorBoard events and"
echo "   operative_config.gin in $run_dir/pretrain and $run_dir/finetune; SavedModels in"
echo "   $run_dir/models; the held-out table above in $run_dir/heldout/table1.md"
