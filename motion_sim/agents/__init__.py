"""Baseline sim agents that implement the serving contract of `export/signature.py`.

Each is a `tf.Module` with `simulate(scene, seed, num_rollouts)` in the scene frame, so it
exports as a SavedModel and runs through exactly the submission / evaluation path of the
trained model (`export.export_baseline.baseline_rollouts` builds their `ScenarioRollouts` in
process through that same path; this package does not import `export/`).
"""
