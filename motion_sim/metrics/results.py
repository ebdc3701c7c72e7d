"""Aggregation and reporting of WOSAC results: JSON (atomic), the paper's Table 1 layout and
the lines `evaluate` prints (time split, constant-velocity fallback counts).

JSON layout: {"config": year, "backend": name, "aggregate": {SimAgentMetrics fields},
"buckets": {SimAgentsBucketedMetrics fields}, "scenarios": {scenario_id: {fields}}} -- field
names are the official proto's, aggregation is the official `aggregate_scenario_metrics` and
`aggregate_metrics_to_buckets`.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import tempfile

from absl import logging
from waymo_open_dataset.protos import sim_agents_metrics_pb2
from waymo_open_dataset.wdl_limited.sim_agents_metrics import metrics as official_metrics

from motion_sim.metrics import history_only

METRIC_FIELDS = tuple(
    f.name
    for f in sim_agents_metrics_pb2.SimAgentMetrics.DESCRIPTOR.fields
    if f.name != "scenario_id"
)
BUCKET_FIELDS = tuple(
    f.name for f in sim_agents_metrics_pb2.SimAgentsBucketedMetrics.DESCRIPTOR.fields
)
# (column title, where the value lives in a results dict, format).
TABLE1_COLUMNS = (
    ("Realism meta-metric ↑", ("buckets", "realism_meta_metric"), "{:.4f}"),
    ("Kinematic ↑", ("buckets", "kinematic_metrics"), "{:.4f}"),
    ("Interactive ↑", ("buckets", "interactive_metrics"), "{:.4f}"),
    ("Map-based ↑", ("buckets", "map_based_metrics"), "{:.4f}"),
    ("minADE (m) ↓", ("buckets", "min_ade"), "{:.4f}"),
    ("ADE (m) ↓", ("aggregate", "average_displacement_error"), "{:.4f}"),
)


def metrics_to_dict(m: sim_agents_metrics_pb2.SimAgentMetrics) -> dict[str, float]:
    """Every metric field (zeros included) as a float."""
    return {name: float(getattr(m, name)) for name in METRIC_FIELDS}


def summarize(
    config: sim_agents_metrics_pb2.SimAgentMetricsConfig,
    per_scenario: list[sim_agents_metrics_pb2.SimAgentMetrics],
) -> dict:
    """{"aggregate", "buckets", "scenarios"} for the scored scenarios (official aggregation)."""
    if not per_scenario:
        raise ValueError("no scenario was scored")
    aggregate = official_metrics.aggregate_scenario_metrics(per_scenario)
    buckets = official_metrics.aggregate_metrics_to_buckets(config, aggregate)
    return {
        "aggregate": metrics_to_dict(aggregate),
        "buckets": {name: float(getattr(buckets, name)) for name in BUCKET_FIELDS},
        "scenarios": {m.scenario_id: metrics_to_dict(m) for m in per_scenario},
    }


def _default_mode() -> int:
    # mkstemp creates 0600 files; outputs get the usual umask-derived mode (0644 under umask 022).
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def check_writable(path) -> None:
    """Raises OSError naming `path` unless `write_text_atomic(path, ...)` can work: called before
    scoring, so an unwritable --output does not lose an hour of scoring at the very end."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, expected a file path")
    existing = next((p for p in path.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise NotADirectoryError(f"{path}: cannot write here ({existing} is a file, not a folder)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(f"{path}: cannot write here ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(tmp)


def write_text_atomic(path, text: str) -> None:
    """Writes `text` to `path` through a temp file in the same folder + rename."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _default_mode())
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json(path, results: dict) -> None:
    write_text_atomic(path, json.dumps(results, indent=1, sort_keys=True) + "\n")


def table1_markdown(results: dict[str, dict]) -> str:
    """Markdown table laid out like the paper's Table 1, one row per named result set.

    Args:
      results: method name -> a results dict as written by `evaluate` (needs "buckets" and
        "aggregate").
    """
    head = "| Method | " + " | ".join(c[0] for c in TABLE1_COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(TABLE1_COLUMNS)
    rows = []
    for method, result in results.items():
        cells = []
        for title, (section, key), fmt in TABLE1_COLUMNS:
            try:
                cells.append(fmt.format(result[section][key]))
            except KeyError as e:
                raise ValueError(
                    f"results of {method!r} lack {section}.{key} (column {title!r})"
                ) from e
        rows.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join([head, rule] + rows) + "\n"


def write_table1(results: dict[str, dict], path) -> None:
    """Writes `table1_markdown(results)` to `path` atomically."""
    write_text_atomic(path, table1_markdown(results))


def fallback_summary(counts: list) -> dict:
    """Totals of the per-scenario `RolloutStats` of a --saved_model run."""
    sim = sum(c.num_sim_agents for c in counts)
    fallback = sum(c.num_fallback_agents for c in counts)
    return {
        "sim_agents": sim,
        "fallback_agents": fallback,
        "fallback_agent_fraction": fallback / sim if sim else 0.0,
        "scenarios_with_fallback": sum(c.num_fallback_agents > 0 for c in counts),
        "num_scenarios": len(counts),
    }


def report_fallback(fallback: dict, saved_model: str, max_fraction: float) -> None:
    """Prints the fallback counts to stderr; above `max_fraction` of the sim agents, a loud
    warning (also logged)."""
    fraction = fallback["fallback_agent_fraction"]
    print(
        f"evaluate: constant-velocity fallback drove {fallback['fallback_agents']} of "
        f"{fallback['sim_agents']} sim agents ({fraction:.2%}) in "
        f"{fallback['scenarios_with_fallback']} of {fallback['num_scenarios']} scenarios",
        file=sys.stderr,
    )
    if fraction > max_fraction:
        message = (
            f"WARNING: {fraction:.2%} of sim agents were driven by the constant-velocity "
            f"fallback, not by {saved_model} (above --max_fallback_fraction={max_fraction}): "
            "these scores are partly the fallback's"
        )
        logging.warning(message)
        print("\n" + "!" * 78 + f"\n{message}\n" + "!" * 78, file=sys.stderr)


def time_split(results: dict) -> str:
    """One line: where the time of an `evaluate` run went."""
    t = results["timing"]
    parts = [
        f"{results['num_scenarios']} scenarios in {results['seconds']:.1f} s",
        f"{results['num_workers']} worker(s)",
        f"read scenarios {t['read_scenarios']:.1f} s",
        f"decode + validate rollouts {t['decode']:.1f} s",
    ]
    if results["backend"] == "fast":
        parts += [
            f"protos -> arrays {t['arrays']:.1f} s",
            f"compile {t['compile']:.1f} s",
            f"{t['compilations']} compilation(s)",
            f"features {t['features']:.1f} s",
            f"exact-fallback steps {t['fallback_steps']} in {t['fallbacks']} scenario(s)",
            "(fast parts summed over workers)",
        ]
    return "time split: " + ", ".join(parts)


def write_run_outputs(results: dict, output: pathlib.Path, method_name: str | None) -> int:
    """FILE.json + FILE.md of a whole run (one process, or merged); exit status."""
    if results["unscored"] and not results["num_scenarios"]:  # every scene was history-only
        return report_unscored(results)
    write_json(output, results)
    write_table1({method_name or output.stem: results}, output.with_suffix(".md"))
    logging.info("%d scenarios: %s", results["num_scenarios"], results["buckets"])
    print(time_split(results))
    print(f"wrote {output} and {output.with_suffix('.md')}")
    return 0


def report_unscored(results: dict) -> int:
    """Exit status and one line when no scene had a logged future to score against."""
    first = results["unscored"][0]
    if not results["rollouts_output"]:
        error = history_only.no_future_error(
            first["source"],
            first["scenario_id"],
            "; its rollouts were generated and validated: pass --rollouts_output=FILE to keep them",
        )
        print(f"evaluate: bad input: {error}", file=sys.stderr)
        return 2
    print(
        f"evaluate: wrote the rollouts of {len(results['unscored'])} history-only scenario(s) "
        f"to {results['rollouts_output']}; none has a logged future to score against"
    )
    return 0
