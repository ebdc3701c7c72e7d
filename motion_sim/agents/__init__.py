"""Baseline sim agents that implement the serving contract of `export/signature.py`.

Each is a `tf.Module` with `simulate(scene, seed, num_rollouts)` in the scene frame, so it
exports as a SavedModel and runs through exactly the submission / evaluation path of the
trained model. `*_rollouts(scenario, num_rollouts, seed)` helpers build `ScenarioRollouts`
for tests and metrics through that same path, in process.
"""
