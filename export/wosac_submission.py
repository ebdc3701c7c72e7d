r"""Writes a WOSAC (Sim Agents Challenge) submission from a sim-agent SavedModel.

    python -m export.wosac_submission --saved_model=DIR --scenarios='test/*.tfrecord*' \
      --output_dir=OUT --account_name=me@example.com --method_name=my_method \
      --authors=A,B --affiliation=Lab --description='...' --method_link=https://... \
      --num_model_parameters=1.2M --uses_lidar_data=false --uses_camera_data=false \
      --uses_public_model_pretraining=false \
      --acknowledge_complies_with_closed_loop_requirement=true [--shard_size=16 --seed=0]

Output in OUT: `submission.binproto-KKKKK-of-NNNNN` shards (each a full
`SimAgentsChallengeSubmission` with the metadata), `submission.tar.gz` of them (the file to
upload), `plan.json`, per-shard `*.stats.json` and `stats.json` (scenarios written/skipped,
history-only scenes, sim agents, and how many of them the constant-velocity fallback drove:
those beyond the model's `MAX_AGENTS`). The input is the WOMD test split (history only: 11
steps); full 91-step scenes work too. Every scenario passes
`submission_specs.validate_scenario_rollouts` before it is written. Re-running the same command
after an interruption skips the shards already written. Bad records are skipped, counted and
named (file:record); more than --max_skipped of them fails the run without a tarball, because
the challenge server rejects a submission that misses scenarios.
"""
from __future__ import annotations

import collections
import json
import os
import sys
import time

import tensorflow as tf
from absl import app
from absl import flags
from absl import logging
from tqdm import tqdm
from waymo_open_dataset.protos import sim_agents_submission_pb2

from export import loader
from export import saved_model_rollouts
from export import submission_shards
from motion_sim.data import scenario_reader
from motion_sim.data.datatypes import MAX_AGENTS, NUM_HISTORY_STEPS, ScenarioError

_REQUIRED = ("saved_model", "scenarios", "output_dir", "account_name", "method_name", "authors",
             "affiliation", "description", "method_link",
             "uses_lidar_data", "uses_camera_data", "uses_public_model_pretraining",
             "acknowledge_complies_with_closed_loop_requirement")


def define_flags() -> None:
    """Defined only when run as a program, so importing this module defines no global flags."""
    flags.DEFINE_string("saved_model", None, "Sim-agent SavedModel directory.")
    flags.DEFINE_string("scenarios", None,
                        "Glob(s), comma-separated, of Scenario-proto TFRecord files.")
    flags.DEFINE_string("output_dir", None, "Directory for shards and the tarball.")
    flags.DEFINE_integer("shard_size", 16, "Scenarios per shard (~4 MB each).")
    flags.DEFINE_integer("seed", 0, "Base seed; each scenario derives its own from it.")
    flags.DEFINE_integer("max_skipped", 0, "Skipped scenarios tolerated before the run fails.")
    # Submission metadata: the fields of SimAgentsChallengeSubmission the challenge requires.
    flags.DEFINE_string("account_name", None, "Waymo Open Dataset account e-mail.")
    flags.DEFINE_string("method_name", None, "Unique method name on the leaderboard.")
    flags.DEFINE_list("authors", None, "Comma-separated author names.")
    flags.DEFINE_string("affiliation", None, "Authors' affiliation.")
    flags.DEFINE_string("description", None, "Short method description.")
    flags.DEFINE_string("method_link", None, "Paper or code link.")
    flags.DEFINE_string("num_model_parameters", None,
                        "Model size as shown on the leaderboard, e.g. 1.2M (default: the "
                        "count export.export_model recorded in the SavedModel's sim_agent.json).")
    flags.DEFINE_bool("uses_lidar_data", None, "Whether the method uses lidar.")
    flags.DEFINE_bool("uses_camera_data", None, "Whether the method uses cameras.")
    flags.DEFINE_bool("uses_public_model_pretraining", None,
                      "Whether public pretrained models were used.")
    flags.DEFINE_list("public_model_names", [], "Names of the public pretrained models, if used.")
    flags.DEFINE_bool("acknowledge_complies_with_closed_loop_requirement", None,
                      "Must be true: the rollouts were produced closed-loop (the challenge's rule).")
    flags.mark_flags_as_required(_REQUIRED)


def submission_metadata(values: dict) -> dict:
    """`SimAgentsChallengeSubmission` metadata from flag values, checked against the rules.

    Args:
      values: flag name -> value (the flags defined in `define_flags`).

    Raises:
      app.UsageError: a required field is empty or a rule is broken.
    """
    if not values["acknowledge_complies_with_closed_loop_requirement"]:
        raise app.UsageError("--acknowledge_complies_with_closed_loop_requirement must be true: "
                             "WOSAC only accepts closed-loop simulations")
    if values["uses_public_model_pretraining"] and not values["public_model_names"]:
        raise app.UsageError("--uses_public_model_pretraining=true needs --public_model_names")
    for name in ("account_name", "method_name", "affiliation", "description", "method_link",
                 "num_model_parameters"):
        if not str(values[name]).strip():
            raise app.UsageError(f"--{name} must not be empty")
    authors = [a.strip() for a in values["authors"] if a.strip()]
    if not authors:
        raise app.UsageError("--authors must name at least one author")
    return {
        "account_name": values["account_name"],
        "unique_method_name": values["method_name"],
        "authors": authors,
        "affiliation": values["affiliation"],
        "description": values["description"],
        "method_link": values["method_link"],
        "num_model_parameters": values["num_model_parameters"],
        "uses_lidar_data": bool(values["uses_lidar_data"]),
        "uses_camera_data": bool(values["uses_camera_data"]),
        "uses_public_model_pretraining": bool(values["uses_public_model_pretraining"]),
        "public_model_names": list(values["public_model_names"]),
        "acknowledge_complies_with_closed_loop_requirement": True,
    }


def _empty_shard_stats() -> dict:
    return {"scenarios_written": 0, "scenarios_skipped": 0, "skipped": [],
            "history_only_scenarios": 0,
            "sim_agents": 0, "model_agents": 0, "fallback_agents": 0,
            "scenarios_with_fallback": 0}


def write_submission(saved_model: str, scenarios: str, output_dir: str, metadata: dict,
                     shard_size: int = 16, seed: int = 0, max_skipped: int = 0) -> dict:
    """Runs the whole job; returns the totals also written to `output_dir/stats.json`.

    Raises:
      loader.SimAgentLoadError: the SavedModel cannot be loaded.
      ScenarioError / FileNotFoundError: an input file is missing or not a TFRecord.
      RuntimeError: more than `max_skipped` scenarios were skipped (no tarball is written).
    """
    start = time.time()
    model = saved_model_rollouts.load_cached(saved_model)
    if model.num_rollouts != 32:
        raise ValueError(f"{saved_model}: exports {model.num_rollouts} rollouts per scenario; "
                         "WOSAC needs 32 (re-export with num_rollouts=32)")
    os.makedirs(output_dir, exist_ok=True)
    settings = {"saved_model": os.path.abspath(saved_model), "seed": int(seed),
                "metadata": metadata}
    plan = submission_shards.make_plan(scenarios, shard_size, settings)
    if plan.num_scenarios == 0:
        raise ValueError(f"{scenarios}: the matching files hold no records")
    resumed = submission_shards.check_or_write_plan(output_dir, plan)
    finished = {k for k in range(plan.num_shards)
                if os.path.exists(os.path.join(output_dir, plan.shard_name(k)))}
    logging.info("%d scenarios in %d files -> %d shards; %d already written%s",
                 plan.num_scenarios, len(plan.files), plan.num_shards, len(finished),
                 " (resuming)" if resumed else "")

    done = sum(plan.shard_count(k) for k in finished)
    bar = tqdm(total=plan.num_scenarios, initial=done, unit="scenario", dynamic_ncols=True,
               desc="WOSAC rollouts", file=sys.stderr)
    current, rollouts, stats = None, [], _empty_shard_stats()

    def flush(k: int) -> None:
        submission = sim_agents_submission_pb2.SimAgentsChallengeSubmission(
            scenario_rollouts=rollouts,
            submission_type=sim_agents_submission_pb2.SimAgentsChallengeSubmission
            .SIM_AGENTS_SUBMISSION, **metadata)
        shard_path = os.path.join(output_dir, plan.shard_name(k))
        # Stats first: a renamed shard always has its stats beside it.
        submission_shards.write_json_atomic(shard_path + ".stats.json", stats)
        submission_shards.write_atomic(shard_path, submission.SerializeToString())

    for index, source, serialized in submission_shards.iter_planned_records(plan):
        k = plan.shard_of(index)
        if k in finished:
            continue
        if k != current:
            if current is not None:
                flush(current)
            current, rollouts, stats = k, [], _empty_shard_stats()
        try:
            scenario = scenario_reader.parse_scenario_bytes(serialized, source)
            scenario_rollouts, counts = (
                saved_model_rollouts.generate_scenario_rollouts_with_stats(
                    saved_model, scenario, seed, source))
        except tf.errors.OpError as e:
            # The model itself failed (not the data): every later scenario would fail too.
            raise RuntimeError(f"{source}: the sim agent failed on this scenario: "
                               f"{type(e).__name__}: {e.message}") from e
        except (ScenarioError, ValueError) as e:
            reason = getattr(e, "reason", "invalid_rollouts")
            logging.warning("skipping %s: %s", source, e)
            stats["scenarios_skipped"] += 1
            stats["skipped"].append({"source": source, "reason": reason, "error": str(e)})
        else:
            rollouts.append(scenario_rollouts)
            stats["scenarios_written"] += 1
            stats["sim_agents"] += counts.num_sim_agents
            stats["model_agents"] += counts.num_model_agents
            stats["fallback_agents"] += counts.num_fallback_agents
            stats["scenarios_with_fallback"] += int(counts.num_fallback_agents > 0)
            stats["history_only_scenarios"] += int(
                len(scenario.timestamps_seconds) == NUM_HISTORY_STEPS)
        bar.update(1)
    if current is not None:
        flush(current)
    bar.close()

    totals = _aggregate(output_dir, plan)
    totals.update(seconds=round(time.time() - start, 1), resumed=resumed,
                  shards_written_this_run=plan.num_shards - len(finished))
    if totals["scenarios_skipped"] > max_skipped:
        submission_shards.write_json_atomic(os.path.join(output_dir, "stats.json"), totals)
        sources = ", ".join(s["source"] for s in totals["skipped"][:10])
        raise RuntimeError(
            f"{totals['scenarios_skipped']} scenarios skipped (> --max_skipped={max_skipped}): "
            f"{sources}; no tarball written (see {output_dir}/stats.json). Fix the inputs and "
            "delete the affected shards to redo them.")
    totals["tarball"] = submission_shards.write_tarball(
        output_dir, [plan.shard_name(k) for k in range(plan.num_shards)])
    submission_shards.write_json_atomic(os.path.join(output_dir, "stats.json"), totals)
    return totals


def _aggregate(output_dir: str, plan: submission_shards.ShardPlan) -> dict:
    totals = collections.Counter()
    skipped = []
    for k in range(plan.num_shards):
        with open(os.path.join(output_dir, plan.shard_name(k)) + ".stats.json") as f:
            shard = json.load(f)
        skipped.extend(shard.pop("skipped"))
        totals.update(shard)
    out = dict(totals)
    out.update(num_scenarios=plan.num_scenarios, num_shards=plan.num_shards, skipped=skipped)
    return out


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    values = flags.FLAGS.flag_values_dict()
    if values["num_model_parameters"] is None:
        # Trained-model exports record their size; baselines and foreign models must say it.
        try:
            count = loader.read_sim_agent_info(values["saved_model"]).get("num_model_parameters")
        except loader.SimAgentLoadError as e:
            raise app.UsageError(str(e)) from e
        if count is None:
            raise app.UsageError("--num_model_parameters is required: the SavedModel has no "
                                 f"{loader.INFO_FILE} recording it")
        values["num_model_parameters"] = str(count)
    metadata = submission_metadata(values)
    try:
        totals = write_submission(values["saved_model"], values["scenarios"],
                                  values["output_dir"], metadata, values["shard_size"],
                                  values["seed"], values["max_skipped"])
    except (loader.SimAgentLoadError, ScenarioError, FileNotFoundError, ValueError,
            RuntimeError) as e:
        logging.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(coverage_line(totals), file=sys.stderr)
    print(json.dumps({k: v for k, v in totals.items() if k != "skipped"}, sort_keys=True))


def coverage_line(totals: dict) -> str:
    """One line on who drives the official sim agents, printed at the end of a run."""
    return (f"wosac_submission: {totals.get('scenarios_written', 0)} scenarios "
            f"({totals.get('history_only_scenarios', 0)} history-only) cover "
            f"{totals.get('sim_agents', 0)} sim agents: {totals.get('model_agents', 0)} by the "
            f"model, {totals.get('fallback_agents', 0)} by the constant-velocity fallback (agents "
            f"beyond the model's {MAX_AGENTS}, in {totals.get('scenarios_with_fallback', 0)} "
            f"scenarios)")


if __name__ == "__main__":
    define_flags()
    app.run(main)
