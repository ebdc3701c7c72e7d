"""WOSAC metrics: configs, rollout I/O and validation, official and fast (XLA) backends.

Modules: `config` (2023/2024/2025 configs), `rollouts_io` / `rollout_checks` (reading and
validating submissions), `backend` (`make_backend`: the one scoring path), `official_backend`
(waymo-open-dataset code), `fast_backend`, `worker_pool` (their spawned workers),
`scenario_arrays` + `fast_features` (kinematics; `fast_interaction`, `fast_map_features`,
`pruned_search`) + `fast_likelihoods` + `fast_metrics` (the compiled re-implementation),
`results` (JSON and Table 1). CLI: `python -m motion_sim.evaluate`.
"""
