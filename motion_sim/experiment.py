r"""The paper's experiments in one resumable command: Tables 1-2 on held-out scenes.

    python -m motion_sim.experiment --gin_file=gin/experiment_cpu.gin --output_dir=runs/study \
        [--dry_run] [--tpu=local] [--shared_dir=../shared] [--gin_bindings=...]

Stages, in order (each one command; `--dry_run` prints them all with their state):
  data                     training scenes (real ones split by scenario id + synthetic)
                           -> OUT/data/train, OUT/data/train_split.json
  [preprocess]             preprocessing of a large training set (the paper config)
  train/bc/sN              BC pre-training, one run per seed N
  train/bc_cont/sN         control: BC continued for the fine-tuning steps (fine-tuning's lr)
  train/rl_lamL/sN         RL fine-tuning from bc/sN with collision weight L (L = 0: control)
  train/rl_scratch/sN      control: RL from a random policy (the paper's "RL only")
  export/ARM_sN            SavedModel of every policy (`export.export_model`)
  baselines                baseline SavedModels (constant velocity)
  heldout                  validation scenes (held-out real + val_sources, minus any training
                           id) -> OUT/data/val/scenarios.tfrecord, OUT/data/split.json (asserted)
  evaluate                 every policy on the validation scenes, fast WOSAC backend, each config
  tables                   OUT/table1.md, table2.md, results.json, plot.png

A stage is done when its marker OUT/stages/<stage>.done exists (written atomically after the
stage's command exits 0); re-running the command skips done stages, and an interrupted training
stage resumes from its run's checkpoint. Each stage's output goes to OUT/logs/<stage>.log.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

from absl import app, flags

from motion_sim.experiment_config import ExperimentConfig, experiment_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IN_PROCESS_STAGES = ("data", "heldout", "baselines", "evaluate", "tables")


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of the study: a command, and what to delete before re-running it after a crash.

    clean: output that a half-finished attempt may leave and that the command will not overwrite
      (an export directory); training runs are never cleaned (they resume).
    """

    name: str
    argv: tuple
    clean: str = ""


class ExperimentPlan:
    """The stages of one study and the directories they use (no side effects)."""

    def __init__(
        self, cfg: ExperimentConfig, out_dir: str, self_argv: list[str], tpu: str | None = None
    ):
        self.cfg = cfg
        self.out = os.path.abspath(out_dir)
        self._self_argv = self_argv  # how to call this binary for an in-process stage
        self._tpu = tpu

    def path(self, *parts) -> str:
        return os.path.join(self.out, *parts)

    def train_data(self) -> str:
        globs = []
        if self.cfg.real_sources or self.cfg.num_synthetic:
            globs.append(self.path("data", "train", "*.tfrecord.gz"))
        if self.cfg.preprocess_train:
            globs.append(self.path("data", "preprocessed", "*.tfrecord.gz"))
        if self.cfg.train_shards:
            globs.append(self.cfg.train_shards)
        return ",".join(globs)

    def run_dir(self, arm: str, seed: int) -> str:
        return self.path("runs", arm, f"s{seed}")

    def arms(self) -> list[str]:
        """Trained arms: BC and the lambda arms first (the claim needs them), then controls."""
        arms = ["bc"] + [arm_name(lam) for lam in self.cfg.lambdas]
        arms += ["bc_cont"] if self.cfg.continued_bc else []
        return arms + (["rl_scratch"] if self.cfg.scratch_steps else [])

    def policies(self) -> dict[str, str]:
        """Every policy to evaluate: name -> SavedModel directory (baselines first)."""
        out = {b: self.path("models", "baselines", b) for b in self.cfg.baselines}
        for arm in self.arms():
            for seed in self.cfg.seeds:
                out[f"{arm}_s{seed}"] = self.path("models", f"{arm}_s{seed}")
        return out

    def _train(self, arm: str, seed: int) -> list[str]:
        cfg = self.cfg
        common = list(cfg.bindings) + [f"train.train_data='{self.train_data()}'"]
        bc_run = self.run_dir("bc", seed)
        if arm in ("bc", "bc_cont"):
            files, binds = cfg.bc_gin, common + list(cfg.bc_bindings)
            if arm == "bc":
                binds.append(f"train.max_steps={cfg.bc_steps}")
            else:
                # Same start, steps and (constant) learning rate as fine-tuning: only the loss
                # differs, so this isolates what RL adds beyond more training.
                binds += [
                    f"train.init_checkpoint='{bc_run}'",
                    f"train.max_steps={cfg.rl_steps}",
                    f"make_optimizer.learning_rate={cfg.continued_bc_learning_rate}",
                ]
        else:
            files, binds = cfg.rl_gin, common + list(cfg.rl_bindings)
            if arm == "rl_scratch":
                binds += [
                    "PRETRAINED_CHECKPOINT=None",
                    "train.rl_from_scratch=True",
                    f"RewardFunction.collision_weight={cfg.table1_lambda}",
                    f"train.max_steps={cfg.scratch_steps}",
                ]
            else:
                lam = float(arm[len("rl_lam") :])
                binds += [
                    f"PRETRAINED_CHECKPOINT='{bc_run}'",
                    f"RewardFunction.collision_weight={lam}",
                    f"train.max_steps={cfg.rl_steps}",
                ]
        argv = [
            sys.executable,
            "-m",
            "motion_sim.train",
            f"--root_dir={self.run_dir(arm, seed)}",
            f"--seed={seed}",
        ]
        argv += [f"--gin_file={f}" for f in files] + [f"--gin_bindings={b}" for b in binds]
        return argv + ([f"--tpu={self._tpu}"] if self._tpu else [])

    def _self(self, stage: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "motion_sim.experiment",
            *self._self_argv,
            f"--output_dir={self.out}",
            f"--stage={stage}",
        ]

    def stages(self) -> list[Stage]:
        cfg = self.cfg
        stages = [Stage("data", tuple(self._self("data")))]
        if cfg.preprocess_train:
            fmt, _, pattern = cfg.preprocess_train.partition(":")
            stages.append(
                Stage(
                    "preprocess",
                    (
                        sys.executable,
                        "-m",
                        "motion_sim.data.preprocess",
                        f"--input={pattern}",
                        f"--output_dir={self.path('data', 'preprocessed')}",
                        f"--format={fmt}",
                        f"--num_workers={cfg.preprocess_workers}",
                    ),
                )
            )
        # BC and the lambda arms are trained and exported before the controls, so a study cut
        # short can still be scored without them (re-run with the controls switched off).
        core = [a for a in self.arms() if a not in ("bc_cont", "rl_scratch")]
        controls = [a for a in self.arms() if a in ("bc_cont", "rl_scratch")]
        for group in (core, controls):
            for arm in group:
                for seed in cfg.seeds:
                    stages.append(Stage(f"train/{arm}/s{seed}", tuple(self._train(arm, seed))))
            for arm in group:
                for seed in cfg.seeds:
                    model = self.path("models", f"{arm}_s{seed}")
                    stages.append(
                        Stage(
                            f"export/{arm}_s{seed}",
                            (
                                sys.executable,
                                "-m",
                                "export.export_model",
                                f"--root_dir={self.run_dir(arm, seed)}",
                                f"--output_dir={model}",
                                f"--num_rollouts={cfg.num_rollouts}",
                            ),
                            clean=model,
                        )
                    )
        if cfg.baselines:
            stages.append(
                Stage(
                    "baselines",
                    tuple(self._self("baselines")),
                    clean=self.path("models", "baselines"),
                )
            )
        stages.append(Stage("heldout", tuple(self._self("heldout"))))
        stages.append(Stage("evaluate", tuple(self._self("evaluate"))))
        stages.append(Stage("tables", tuple(self._self("tables"))))
        return stages


def arm_name(lam: float) -> str:
    """'rl_lam2' for 2.0 (the same names as `export.experiment_report.arm_name`)."""
    return f"rl_lam{lam:g}"


def _marker(out: str, stage: str) -> str:
    return os.path.join(out, "stages", stage.replace("/", "__") + ".done")


def _write_atomic(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def run_plan(plan: ExperimentPlan, dry_run: bool = False) -> int:
    """Runs (or with dry_run prints) every stage not yet done; returns an exit status."""
    start = time.time()
    for stage in plan.stages():
        marker = _marker(plan.out, stage.name)
        done = os.path.exists(marker)
        if dry_run:
            print(f"[{'done' if done else 'todo'}] {stage.name}: {shlex.join(stage.argv)}")
            continue
        if done:
            print(f"== {stage.name}: done earlier, skipped", flush=True)
            continue
        if stage.clean and os.path.exists(stage.clean):
            shutil.rmtree(stage.clean)  # left by an attempt that died before its marker
        log = os.path.join(plan.out, "logs", stage.name.replace("/", "__") + ".log")
        os.makedirs(os.path.dirname(log), exist_ok=True)
        print(f"== {stage.name} (log: {log})", flush=True)
        t0 = time.time()
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        with open(log, "a") as f:
            f.write(f"$ {shlex.join(stage.argv)}\n")
            f.flush()
            rc = subprocess.run(
                stage.argv, check=False, cwd=REPO_ROOT, env=env, stdout=f, stderr=subprocess.STDOUT
            ).returncode
        if rc != 0:
            with open(log) as f:
                tail = f.read()[-2000:]
            print(
                f"{tail}\nexperiment: error: stage {stage.name} failed (exit {rc}); "
                f"log {log}. Re-run the same command to resume.",
                file=sys.stderr,
                flush=True,
            )
            return 1
        _write_atomic(
            marker,
            json.dumps(
                {
                    "stage": stage.name,
                    "argv": list(stage.argv),
                    "seconds": round(time.time() - t0, 1),
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
            + "\n",
        )
        print(f"   {stage.name}: {time.time() - t0:.0f} s", flush=True)
    if not dry_run:
        print(
            f"== all stages done in {time.time() - start:.0f} s this call: "
            f"{plan.path('table1.md')}, {plan.path('table2.md')}, "
            f"{plan.path('results.json')}, {plan.path('plot.png')}",
            flush=True,
        )
    return 0


# ---------------------------------------------------------------- in-process stages
def stage_data(plan: ExperimentPlan, shared: str) -> None:
    from motion_sim import experiment_data  # pylint: disable=import-outside-toplevel

    result = experiment_data.build_train(plan.cfg, plan.path("data"), REPO_ROOT, shared)
    print(
        json.dumps(
            {k: result[k] for k in ("num_train", "num_real_train", "real_val_ids", "skipped")}
        )
    )


def stage_heldout(plan: ExperimentPlan, shared: str) -> None:
    from motion_sim import experiment_data  # pylint: disable=import-outside-toplevel

    result = experiment_data.build_heldout(plan.cfg, plan.path("data"), REPO_ROOT, shared)
    _check_split(plan)
    print(json.dumps({k: result[k] for k in ("num_train", "num_val", "val_ids", "skipped")}))


def _check_split(plan: ExperimentPlan) -> dict:
    from motion_sim import experiment_data  # pylint: disable=import-outside-toplevel

    extra = ",".join(
        g
        for g in (
            plan.cfg.train_shards,
            plan.path("data", "preprocessed", "*.tfrecord.gz") if plan.cfg.preprocess_train else "",
        )
        if g
    )
    return experiment_data.check_split(plan.path("data"), extra)


def stage_baselines(plan: ExperimentPlan) -> None:
    from export import report  # pylint: disable=import-outside-toplevel

    report.export_baselines(
        list(plan.cfg.baselines), plan.path("models", "baselines"), plan.cfg.num_rollouts
    )


def stage_evaluate(plan: ExperimentPlan) -> None:
    from export import experiment_report  # pylint: disable=import-outside-toplevel
    from motion_sim import experiment_data  # pylint: disable=import-outside-toplevel

    split = _check_split(plan)  # never score a scene that was trained on
    scenes = experiment_report.read_validation(plan.path("data", experiment_data.VAL_SCENARIOS))
    ids = sorted(s.scenario_id for _, s in scenes)
    if ids != sorted(split["val_ids"]):
        raise RuntimeError("validation file and split.json disagree on the scenario ids")
    scorer = experiment_report.PolicyScorer(scenes, plan.cfg.configs, plan.cfg.eval_seed)
    for name, model in plan.policies().items():
        path = plan.path("eval", f"{name}.json")
        if os.path.exists(path):
            continue  # scored by an earlier, interrupted call
        result = scorer.score(name, model)
        if plan.cfg.num_images:
            _draw_policy(plan, name, model, scenes[: plan.cfg.num_images])
        _write_atomic(path, json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"{name}: {json.dumps(experiment_report.headline(result))}", flush=True)


def _draw_policy(plan: ExperimentPlan, name: str, model: str, scenes: list) -> None:
    """Rollout figures of `scenes` by the policy (the scored rollouts: same per-scene seeds)."""
    from export import saved_model_rollouts  # pylint: disable=import-outside-toplevel
    from motion_sim.viz import image_files  # pylint: disable=import-outside-toplevel

    pairs = [
        (
            source,
            scenario,
            saved_model_rollouts.generate_scenario_rollouts(model, scenario, plan.cfg.eval_seed),
        )
        for source, scenario in scenes
    ]
    image_files.write_rollout_images(pairs, plan.path("images", name))


def stage_tables(plan: ExperimentPlan) -> None:
    from export import experiment_report  # pylint: disable=import-outside-toplevel

    cfg = plan.cfg
    split = _check_split(plan)
    per_policy = {}
    for name in plan.policies():
        with open(plan.path("eval", f"{name}.json")) as f:
            per_policy[name] = json.load(f)
    arms = {b: [b] for b in cfg.baselines}
    arms.update({arm: [f"{arm}_s{s}" for s in cfg.seeds] for arm in plan.arms()})
    rows = {b.replace("_", " ").capitalize(): b for b in cfg.baselines}
    rows["BC (pre-trained)"] = "bc"
    rows[f"BC + RL (λ = {cfg.table1_lambda:g})"] = arm_name(cfg.table1_lambda)
    if cfg.continued_bc:
        rows["BC continued (control)"] = "bc_cont"
    if cfg.scratch_steps:
        rows[f"RL only (from scratch, λ = {cfg.table1_lambda:g})"] = "rl_scratch"
    header = {
        "config": dataclasses.asdict(cfg),
        "split": {k: split[k] for k in ("num_train", "num_val", "num_real_train", "val_ids")},
        "seeds": list(cfg.seeds),
    }
    results = experiment_report.write_study(
        plan.out, per_policy, arms, rows, list(cfg.lambdas), header
    )
    with open(plan.path("table1.md")) as f:
        print(f.read())
    if os.path.exists(plan.path("table2.md")):
        with open(plan.path("table2.md")) as f:
            print(f.read())
    print(json.dumps(results["claims"], indent=1))


FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_multi_string("gin_file", [], "Experiment gin files (gin/experiment_*.gin).")
    flags.DEFINE_multi_string("gin_bindings", [], "Extra bindings, e.g. experiment.seeds=[0].")
    flags.DEFINE_string("output_dir", None, "Study directory (resumable).")
    flags.DEFINE_bool("dry_run", False, "Print every stage's command and state; run nothing.")
    flags.DEFINE_string("tpu", None, "Passed to every training command (TPUStrategy).")
    flags.DEFINE_string(
        "shared_dir",
        "../shared",
        "The shared data folder ('{shared}' in source globs); relative to the repo root.",
    )
    flags.DEFINE_enum(
        "stage",
        None,
        list(IN_PROCESS_STAGES),
        "Internal: run one in-process stage (the driver calls this).",
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.gin_file or not FLAGS.output_dir:
        raise app.UsageError("--gin_file and --output_dir are required")
    from motion_sim.learner.gin_config import ConfigError, parse_gin  # pylint: disable=import-outside-toplevel

    try:
        parse_gin(FLAGS.gin_file, FLAGS.gin_bindings)
        cfg = experiment_config()
    except (ConfigError, ValueError) as e:
        print(f"experiment: error: {e}", file=sys.stderr, flush=True)
        return 2
    shared = (
        FLAGS.shared_dir
        if os.path.isabs(FLAGS.shared_dir)
        else os.path.normpath(os.path.join(REPO_ROOT, FLAGS.shared_dir))
    )
    self_argv = (
        [f"--gin_file={f}" for f in FLAGS.gin_file]
        + [f"--gin_bindings={b}" for b in FLAGS.gin_bindings]
        + [f"--shared_dir={shared}"]
    )
    plan = ExperimentPlan(cfg, FLAGS.output_dir, self_argv, FLAGS.tpu)
    if FLAGS.stage is None:
        return run_plan(plan, FLAGS.dry_run)
    {
        "data": lambda: stage_data(plan, shared),
        "heldout": lambda: stage_heldout(plan, shared),
        "baselines": lambda: stage_baselines(plan),
        "evaluate": lambda: stage_evaluate(plan),
        "tables": lambda: stage_tables(plan),
    }[FLAGS.stage]()
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
