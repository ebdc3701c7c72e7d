"""Proves the pinned stack imports: every module later code relies on, by its real path."""

import importlib
import sys

MODULES = [
    "tensorflow",
    "tensorflow_probability",
    "gin",
    "absl.flags",
    "tensorboard",
    "tf_agents",
    "tf_agents.utils.value_ops",
    "tf_agents.train.learner",
    "waymo_open_dataset.protos.scenario_pb2",
    "waymo_open_dataset.protos.sim_agents_submission_pb2",
    "waymo_open_dataset.wdl_limited.sim_agents_metrics.metrics",
    "waymo_open_dataset.utils.sim_agents.submission_specs",
    "scipy.stats",
    "tqdm",
    "motion_sim",
]


def main() -> int:
    failed = []
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception as e:  # report every failure, not just the first
            failed.append(f"{name}: {type(e).__name__}: {e}")
    import tensorflow as tf

    print(
        f"check_imports: tensorflow {tf.__version__}, {len(MODULES) - len(failed)}/{len(MODULES)} modules import"
    )
    for f in failed:
        print("  FAILED", f)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
