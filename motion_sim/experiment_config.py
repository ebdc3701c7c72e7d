"""What an experiment runs (gin `experiment.*`): data, arms, seeds, steps, evaluation.

`gin/experiment_cpu.gin` (a CPU-sized study on the bundled and shared scenes),
`gin/experiment_paper.gin` (the paper's 1M/10M scale on WOMD) and `gin/experiment_ci.gin`
(every stage, 1-2 steps each) bind it; `motion_sim.experiment` turns it into stages.
"""

from __future__ import annotations

import dataclasses

import gin

SOURCE_FORMATS = ("scenario", "example", "gpudrive")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One study.

    Data (held-out split by scenario id, `motion_sim.data.split`):
      real_sources: "FORMAT:GLOB" of real scenes pooled and split by id; `val_fraction` of them
        (rounded) is the validation set, the rest training. Relative globs are read from the repo
        root; "{shared}" in a glob stands for the shared data folder (flag --shared_dir).
      val_sources: "FORMAT:GLOB" read into validation only (the paper config: WOMD validation).
      train_shards: glob of already preprocessed training shards (the paper config).
      preprocess_train: "FORMAT:GLOB" preprocessed into OUT/data/preprocessed (a stage).
      num_synthetic, synthetic_agents: synthetic training scenes (`data/synthetic.py`).
      val_max_scenes: cap on validation scenes (0 = all), the first by id rank.
    Training (each arm x each seed is one `motion_sim.train` run):
      bc_gin, rl_gin: gin files of BC pre-training and RL fine-tuning; bindings: extra bindings
        of every run; bc_bindings / rl_bindings: of one kind only.
      bc_steps, rl_steps: steps of pre-training and of every fine-tuning arm (and of the
        continued-BC control); scratch_steps: of "RL only" (0 = no such arm).
      lambdas: collision weights of the fine-tuning arms (0 = the displacement-only control).
      table1_lambda: the lambda of Table 1's fine-tuned row (the paper's: 2).
      continued_bc: run the continued-BC control; continued_bc_learning_rate: its constant rate
        (the fine-tuning one, so the loss is the only difference).
      seeds: training seeds; every arm runs each.
    Evaluation:
      num_rollouts: rollouts per validation scene (WOSAC: 32); eval_seed: their seed.
      configs: WOSAC metric configs scored (2023 = the paper's Table 1, 2025 = today's).
      baselines: baseline sim agents scored beside the policies.
      num_images: draw the first N validation scenes of every policy (`motion_sim.viz`):
        OUT/images/<policy>/<id>.png + TensorBoard images (`tensorboard --logdir OUT/images`).
    """

    real_sources: tuple = ()
    val_fraction: float = 0.5
    val_sources: tuple = ()
    train_shards: str = ""
    preprocess_train: str = ""
    preprocess_workers: int = 1
    num_synthetic: int = 0
    synthetic_agents: int = 48
    val_max_scenes: int = 0
    bc_gin: tuple = ("gin/pretrain_1m.gin",)
    rl_gin: tuple = ("gin/finetune_1m.gin",)
    bindings: tuple = ()
    bc_bindings: tuple = ()
    rl_bindings: tuple = ()
    bc_steps: int = 1000
    rl_steps: int = 100
    scratch_steps: int = 100
    lambdas: tuple = (0.0, 2.0, 5.0, 10.0)
    table1_lambda: float = 2.0
    continued_bc: bool = True
    continued_bc_learning_rate: float = 5e-6
    seeds: tuple = (0, 1, 2)
    num_rollouts: int = 32
    eval_seed: int = 0
    configs: tuple = ("2023", "2025")
    baselines: tuple = ("constant_velocity",)
    num_images: int = 0

    def __post_init__(self):
        for field in ("real_sources", "val_sources"):
            for source in getattr(self, field):
                fmt, sep, pattern = source.partition(":")
                if not sep or fmt not in SOURCE_FORMATS or not pattern:
                    raise ValueError(
                        f"experiment.{field}: {source!r} is not FORMAT:GLOB with "
                        f"FORMAT one of {SOURCE_FORMATS}"
                    )
        if self.table1_lambda not in self.lambdas:
            raise ValueError(
                f"experiment.table1_lambda={self.table1_lambda} is not one of "
                f"experiment.lambdas={list(self.lambdas)}"
            )
        if not self.seeds:
            raise ValueError("experiment.seeds is empty")
        if not (self.real_sources or self.val_sources):
            raise ValueError("experiment: no validation scenes (set real_sources or val_sources)")


@gin.configurable("experiment")
def experiment_config(**kwargs) -> ExperimentConfig:
    """Gin entry: `experiment.<field> = value` for each `ExperimentConfig` field."""
    unknown = set(kwargs) - {f.name for f in dataclasses.fields(ExperimentConfig)}
    if unknown:
        raise ValueError(f"unknown experiment setting(s) {sorted(unknown)}")
    return ExperimentConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    )
