r"""One command for the paper's Table 1: baselines and trained SavedModels scored the same way.

    python -m export.report --scenarios='/data/womd/validation/*.tfrecord*' --output=reports/val \
        [--baselines=constant_velocity,random,logged_oracle] \
        [--saved_model=bc10m=models/bc10m --saved_model=ft10m=models/ft10m] \
        --config=2025 --backend=fast|official [--seed=0 --num_workers=1]

Every method is a sim-agent SavedModel -- the baselines are exported first
(`export.export_baseline.make_baseline`, into OUTPUT/baselines/<kind>) -- and every one goes
through the submission path (`saved_model_rollouts.rollouts_from_runner`: scene inputs ->
model -> WOSAC rollouts with the constant-velocity fallback), the metrics engineer's checks
(`rollout_checks.validate_rollouts`), scoring (`metrics.backend.make_backend`: the backends of
`motion_sim.evaluate`) and the official aggregation (`results.summarize`). Writes atomically:

  OUTPUT/report.json  {"config", "backend", "seed", "scenarios", "num_scenarios", "order",
                       "methods": {name: results dict (as `motion_sim.evaluate` writes) +
                                   saved_model, num_model_parameters, rollout_stats}}
  OUTPUT/table1.md    one row per method, in the order given (baselines first).

Scenarios are read once and scored scenario by scenario for all methods, so the fast backend
(in one process) builds each scenario's map tables once. A scenario that cannot be simulated or scored stops
the run with an error naming it (a table over a silently smaller set would mislead).
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time

import tqdm
from absl import app, flags, logging

from export import loader, saved_model_rollouts, signature
from export.export_baseline import BASELINES, make_baseline
from motion_sim.data.datatypes import ScenarioError
from motion_sim.metrics import backend as backend_lib
from motion_sim.metrics import config as config_lib
from motion_sim.metrics import results as results_lib
from motion_sim.metrics import rollout_checks, rollouts_io


def parse_named_models(values: list[str]) -> dict[str, str]:
    """["NAME=DIR", ...] -> {NAME: DIR} (order kept); bad or repeated names are errors."""
    models = {}
    for value in values:
        name, sep, path = value.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise ValueError(f"--saved_model={value!r}: expected NAME=DIR")
        if name in models:
            raise ValueError(f"--saved_model: method name {name!r} given twice")
        models[name] = path
    return models


def export_baselines(kinds: list[str], output_dir: str, num_rollouts: int = 32) -> dict[str, str]:
    """Exports each baseline as a SavedModel under output_dir/<kind>; returns {kind: dir}."""
    unknown = [k for k in kinds if k not in BASELINES]
    if unknown:
        raise ValueError(
            f"unknown baseline(s) {unknown}; choose from {[k.value for k in BASELINES]}"
        )
    info = json.dumps({"kind": "baseline", "num_model_parameters": 0}) + "\n"
    return {
        kind: signature.export_sim_agent(
            make_baseline(kind),
            os.path.join(output_dir, kind),
            num_rollouts,
            extra_files={loader.INFO_FILE: info},
        )
        for kind in kinds
    }


def score_saved_models(
    models: dict[str, str],
    scenario_pattern: str,
    year: str = "2025",
    backend: str = "fast",
    seed: int = 0,
    num_workers: int = 1,
) -> dict:
    """Scores every SavedModel on every scenario; returns {name: results dict}.

    Args:
      models: method name -> sim-agent SavedModel directory (32 rollouts for WOSAC).
      scenario_pattern: comma-separated globs of Scenario TFRecords.
      year: WOSAC metric config; backend: "fast" or "official".
      seed: rollout seed (each scenario derives its own, as in the submission generator).
    """
    if not models:
        raise ValueError("nothing to score: give --baselines and/or --saved_model")
    config = config_lib.load_config(year)
    scenarios = {}
    for source, scenario in rollouts_io.read_scenarios(scenario_pattern):
        scenarios.setdefault(scenario.scenario_id, (source, scenario))
    if not scenarios:
        raise ValueError(f"--scenarios={scenario_pattern!r} holds no scenarios")
    runners = {name: loader.load_sim_agent(path) for name, path in models.items()}
    stats = {name: collections.Counter() for name in models}
    gen_seconds = collections.Counter()

    def items():
        for source, scenario in scenarios.values():
            for name, runner in runners.items():
                start = time.time()
                rollouts, rs = saved_model_rollouts.rollouts_from_runner(
                    runner, scenario, seed, source
                )
                gen_seconds[name] += time.time() - start
                rollout_checks.validate_rollouts(rollouts, scenario, f"{name} on {source}")
                stats[name].update(rs._asdict())
                yield name, source, scenario, rollouts

    per_method = {name: [] for name in models}
    scorer = backend_lib.make_backend(backend, config, num_workers)
    start = time.time()
    total = len(scenarios) * len(models)
    for name, metrics in tqdm.tqdm(
        backend_lib.map_tagged(scorer, items()),
        total=total,
        unit="rollout set",
        desc=f"WOSAC {backend}",
        disable=None,
    ):
        per_method[name].append(metrics)
    seconds = time.time() - start
    results = {}
    for name, path in models.items():
        summary = results_lib.summarize(config, per_method[name])
        info = loader.read_sim_agent_info(path)
        summary.update(
            config=year,
            backend=backend,
            num_scenarios=len(per_method[name]),
            saved_model=os.path.abspath(path),
            num_model_parameters=info.get("num_model_parameters"),
            rollout_stats=dict(stats[name]),
            rollout_seconds=round(gen_seconds[name], 3),
        )
        results[name] = summary
    logging.info("scored %d methods x %d scenarios in %.1f s", len(models), len(scenarios), seconds)
    return results


def write_report(results: dict, output_dir: str, **header) -> tuple[str, str]:
    """OUTPUT/report.json + OUTPUT/table1.md (both atomic); returns their paths."""
    json_path = os.path.join(output_dir, "report.json")
    md_path = os.path.join(output_dir, "table1.md")
    # write_json sorts keys; "order" keeps the table's row order for readers of the JSON.
    results_lib.write_json(json_path, dict(header, methods=results, order=list(results)))
    results_lib.write_table1(results, md_path)
    return json_path, md_path


def run_report(
    scenarios: str,
    output_dir: str,
    baselines: list[str],
    saved_models: dict[str, str],
    year: str = "2025",
    backend: str = "fast",
    seed: int = 0,
    num_workers: int = 1,
) -> dict:
    """Exports the baselines, scores everything, writes the report; returns the results."""
    clash = sorted(set(baselines) & set(saved_models))
    if clash:
        raise ValueError(f"--saved_model names {clash} clash with --baselines")
    models = export_baselines(baselines, os.path.join(output_dir, "baselines"))
    models.update(saved_models)
    results = score_saved_models(models, scenarios, year, backend, seed, num_workers)
    write_report(
        results,
        output_dir,
        config=year,
        backend=backend,
        seed=seed,
        scenarios=scenarios,
        num_scenarios=next(iter(results.values()))["num_scenarios"],
    )
    return results


def define_flags() -> None:
    """Defined only when run as a program, so importing this module defines no global flags."""
    flags.DEFINE_string("scenarios", None, "Comma-separated globs of Scenario TFRecords.")
    flags.DEFINE_string("output", None, "Output directory (report.json, table1.md, baselines/).")
    flags.DEFINE_list(
        "baselines",
        ["constant_velocity", "random", "logged_oracle"],
        f"Baselines to score (of {[k.value for k in BASELINES]}); empty for none.",
    )
    flags.DEFINE_multi_string(
        "saved_model", [], "NAME=DIR of a sim-agent SavedModel to score (repeatable)."
    )
    flags.DEFINE_enum("config", "2025", list(config_lib.CONFIG_YEARS), "Metric config year.")
    flags.DEFINE_enum(
        "backend", "fast", [k.value for k in backend_lib.BackendKind], "Metric implementation."
    )
    flags.DEFINE_integer("seed", 0, "Rollout seed (per-scenario seeds derive from it).")
    flags.DEFINE_integer("num_workers", 1, "Worker processes scoring rollout sets.")
    flags.mark_flags_as_required(["scenarios", "output"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    try:
        saved_models = parse_named_models(f.saved_model)
        results = run_report(
            f.scenarios,
            f.output,
            [b for b in f.baselines if b],
            saved_models,
            f.config,
            f.backend,
            f.seed,
            f.num_workers,
        )
    except (ValueError, FileNotFoundError, loader.SimAgentLoadError, ScenarioError) as e:
        # ScenarioError covers rollout_checks.RolloutError and unreadable scenarios.
        print(f"report: error: {e}", file=sys.stderr, flush=True)
        return 2
    print(results_lib.table1_markdown(results), end="")
    print(
        f"wrote {os.path.join(f.output, 'report.json')} and {os.path.join(f.output, 'table1.md')}"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    define_flags()
    app.run(main)
