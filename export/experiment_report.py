"""The experiment's evaluation and tables: held-out WOSAC scores, mean +- sd over seeds.

`evaluate_policies` scores sim-agent SavedModels on the validation Scenario protos with the fast
backend under every metric config (one set of rollouts per policy and scene, scored by each
config). `summarize_study` groups per-policy results into arms ("bc", "rl_lam2", ...; one policy
per seed), `write_study` writes table1.md, table2.md, results.json and plot.png.

Collision and off-road *rates* are the 2025 config's `simulated_collision_rate` /
`simulated_offroad_rate` (fraction of evaluated agents that collide / leave the road at least
once), ADE / minADE the aggregate fields; all on held-out scenes.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from export import loader, saved_model_rollouts
from motion_sim.metrics import config as config_lib
from motion_sim.metrics import results as results_lib
from motion_sim.metrics import rollout_checks, rollouts_io

# The paper's Table 1 columns: the nine 2023 likelihoods, the composite, ADE, minADE.
LIKELIHOODS_2023 = (
    ("linear_speed_likelihood", "Lin. speed"),
    ("linear_acceleration_likelihood", "Lin. accel"),
    ("angular_speed_likelihood", "Ang. speed"),
    ("angular_acceleration_likelihood", "Ang. accel"),
    ("distance_to_nearest_object_likelihood", "Dist. obj"),
    ("collision_indication_likelihood", "Collision"),
    ("time_to_collision_likelihood", "TTC"),
    ("distance_to_road_edge_likelihood", "Dist. edge"),
    ("offroad_indication_likelihood", "Offroad"),
)
BUCKETS_2025 = (
    ("realism_meta_metric", "2025 realism"),
    ("kinematic_metrics", "Kinematic"),
    ("interactive_metrics", "Interactive"),
    ("map_based_metrics", "Map-based"),
)
RATE_CONFIG = "2025"


def read_validation(path: str) -> list:
    """[(source, Scenario)] of the validation file, in file order."""
    return list(rollouts_io.read_scenarios(path))


class PolicyScorer:
    """Scores SavedModels on fixed scenes under several configs (scene tables built once)."""

    def __init__(self, scenarios: list, years: tuple, seed: int):
        from motion_sim.metrics import fast_metrics, scenario_arrays  # pylint: disable=import-outside-toplevel

        self._arrays_lib = scenario_arrays
        self.scenarios = scenarios
        self.seed = seed
        self.years = tuple(years)
        self._configs = {y: config_lib.load_config(y) for y in self.years}
        self._metrics = {y: fast_metrics.FastMetrics(c) for y, c in self._configs.items()}
        self._arrays = [scenario_arrays.scenario_arrays(s, src) for src, s in scenarios]

    def score(self, name: str, saved_model: str) -> dict:
        """{year: results dict (`results.summarize`)} + "rollout_seconds", "num_model_parameters"."""
        runner = loader.load_sim_agent(saved_model)
        per_year = {y: [] for y in self.years}
        start = time.time()
        for (source, scenario), arrays in zip(self.scenarios, self._arrays):
            rollouts, _ = saved_model_rollouts.rollouts_from_runner(
                runner, scenario, self.seed, source
            )
            rollout_checks.validate_rollouts(rollouts, scenario, f"{name} on {source}")
            sim = self._arrays_lib.rollout_arrays(arrays, rollouts, source)
            # Features once, likelihoods per config year.
            first, *rest = (self._metrics[y] for y in self.years)
            for year, metrics in zip(
                self.years, first.scenario_metrics_by_config(arrays, sim, tuple(rest))
            ):
                per_year[year].append(metrics)
        out = {y: results_lib.summarize(self._configs[y], per_year[y]) for y in self.years}
        out["seconds"] = round(time.time() - start, 2)
        out["num_model_parameters"] = loader.read_sim_agent_info(saved_model).get(
            "num_model_parameters"
        )
        return out


def headline(result: dict) -> dict[str, float]:
    """The numbers the tables use, flat: 2023 likelihoods + composite, ADE, minADE, 2025 ones."""
    row = {}
    if "2023" in result:
        agg = result["2023"]["aggregate"]
        row.update({key: agg[key] for key, _ in LIKELIHOODS_2023})
        row["composite_2023"] = agg["metametric"]
    ref = result.get(RATE_CONFIG) or result[next(k for k in result if k[:2] == "20")]
    row["ade"] = ref["aggregate"]["average_displacement_error"]
    row["min_ade"] = ref["aggregate"]["min_average_displacement_error"]
    if RATE_CONFIG in result:
        buckets = result[RATE_CONFIG]["buckets"]
        row.update({key: buckets[key] for key, _ in BUCKETS_2025})
        row["collision_rate"] = buckets["simulated_collision_rate"]
        row["offroad_rate"] = buckets["simulated_offroad_rate"]
    return row


def _mean_sd(values: list[float]) -> dict:
    arr = np.asarray(values, np.float64)
    sd = float(arr.std(ddof=1)) if len(arr) > 1 else None  # one seed: no spread to report
    return {"mean": float(arr.mean()), "sd": sd, "n": len(arr), "values": [float(v) for v in arr]}


def summarize_study(per_policy: dict[str, dict], arms: dict[str, list[str]]) -> dict:
    """arms: arm -> its policy names (one per seed) -> {arm: {metric: mean/sd/n/values}}."""
    out = {}
    for arm, names in arms.items():
        rows = [headline(per_policy[n]) for n in names]
        out[arm] = {key: _mean_sd([r[key] for r in rows]) for key in rows[0]}
    return out


def _cell(stat: dict | None, fmt: str = "{:.3f}") -> str:
    if stat is None:
        return "-"
    if stat["sd"] is None:
        return fmt.format(stat["mean"])
    return f"{fmt.format(stat['mean'])} ± {fmt.format(stat['sd'])}"


def table1_markdown(summary: dict, rows: dict[str, str]) -> str:
    """rows: display name -> arm. Paper columns (2023), then the 2025 buckets and rates."""
    cols = [(k, t) for k, t in LIKELIHOODS_2023] + [
        ("composite_2023", "Composite (2023)"),
        ("ade", "ADE (m)"),
        ("min_ade", "minADE (m)"),
    ]
    cols += list(BUCKETS_2025) + [
        ("collision_rate", "Collision rate"),
        ("offroad_rate", "Off-road rate"),
    ]
    cols = [(k, t) for k, t in cols if any(k in summary[a] for a in rows.values())]
    lines = ["| Method | " + " | ".join(t for _, t in cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, arm in rows.items():
        lines.append(
            f"| {name} | " + " | ".join(_cell(summary[arm].get(k)) for k, _ in cols) + " |"
        )
    return "\n".join(lines) + "\n"


def _meets(run: dict, ref: dict, min_drop: float, max_ade_rise: float) -> bool:
    """run's collision rate is >= min_drop below ref's, at ADE at most max_ade_rise above."""
    coll_ref = ref["collision_rate"]
    return bool(
        coll_ref > 0
        and (coll_ref - run["collision_rate"]) / coll_ref >= min_drop
        and (run["ade"] - ref["ade"]) / ref["ade"] <= max_ade_rise
    )


def claim_check(
    summary: dict,
    lambdas: list[float],
    per_seed: dict,
    min_drop: float = 0.20,
    max_ade_rise: float = 0.10,
) -> dict:
    """The claim under test, per lambda > 0: the collision rate is >= 20% below BC's and below
    lambda=0's at ADE within +10% of theirs -- on the seed means, and seed by seed (run of seed
    s against BC / lambda=0 of seed s). per_seed: arm -> [headline rows], in seed order."""
    out = {}
    refs = {"bc": "bc", "lambda0": arm_name(0.0)}
    refs = {k: v for k, v in refs.items() if v in summary}
    for lam in lambdas:
        if lam <= 0:
            continue
        arm = arm_name(lam)
        means = {k: v["mean"] for k, v in summary[arm].items()}
        entry = {}
        for ref_name, ref_arm in refs.items():
            ref = {k: v["mean"] for k, v in summary[ref_arm].items()}
            coll_ref = ref["collision_rate"]
            entry[ref_name] = {
                "collision_drop": (
                    (coll_ref - means["collision_rate"]) / coll_ref if coll_ref > 0 else None
                ),
                "ade_rise": (means["ade"] - ref["ade"]) / ref["ade"],
                "holds_on_means": _meets(means, ref, min_drop, max_ade_rise),
                "seeds_holding": sum(
                    _meets(r, b, min_drop, max_ade_rise)
                    for r, b in zip(per_seed[arm], per_seed[ref_arm])
                ),
            }
        entry["seeds"] = len(per_seed[arm])
        entry["seeds_holding_both"] = sum(
            all(
                _meets(per_seed[arm][i], per_seed[ref_arm][i], min_drop, max_ade_rise)
                for ref_arm in refs.values()
            )
            for i in range(entry["seeds"])
        )
        entry["holds"] = bool(
            len(refs) == 2
            and entry["seeds_holding_both"] == entry["seeds"]
            and all(entry[r]["holds_on_means"] for r in refs)
        )
        out[f"{lam:g}"] = entry
    return out


def arm_name(lam: float) -> str:
    """'rl_lam2' for 2.0, 'rl_lam0.5' for 0.5."""
    return f"rl_lam{lam:g}"


def table2_markdown(summary: dict, lambdas: list[float], claims: dict) -> str:
    """One row per lambda (and BC): composite, ADE, minADE, rates, drop vs BC and vs lambda=0."""
    keys = [
        ("composite_2023", "Composite (2023)"),
        ("realism_meta_metric", "2025 realism"),
        ("ade", "ADE (m)"),
        ("min_ade", "minADE (m)"),
        ("collision_rate", "Collision rate"),
        ("offroad_rate", "Off-road rate"),
    ]
    keys = [(k, t) for k, t in keys if k in summary["bc"]]
    lines = [
        "| λ | "
        + " | ".join(t for _, t in keys)
        + " | Δ collision vs BC | Δ collision vs λ=0 | Δ ADE vs BC | seeds meeting claim |",
        "|---|" + "---:|" * (len(keys) + 4),
    ]
    rows = [("BC (no RL)", "bc", None)] + [(f"{lam:g}", arm_name(lam), lam) for lam in lambdas]
    for label, arm, lam in rows:
        cells = [_cell(summary[arm].get(k)) for k, _ in keys]
        claim = claims.get(f"{lam:g}") if lam else None
        if claim:
            bc, l0 = claim.get("bc"), claim.get("lambda0")
            pct = lambda v: "-" if v is None else f"{100 * v:+.0f}%"
            cells += [
                pct(-bc["collision_drop"]) if bc and bc["collision_drop"] is not None else "-",
                pct(-l0["collision_drop"]) if l0 and l0["collision_drop"] is not None else "-",
                pct(bc["ade_rise"]) if bc else "-",
                f"{claim['seeds_holding_both']}/{claim['seeds']}",
            ]
        else:
            cells += ["-"] * 4
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_plot(summary: dict, lambdas: list[float], path: str) -> None:
    """Collision and off-road rate vs ADE per lambda (and BC), seed sd as error bars."""
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    arms = [("BC", "bc")] + [(f"λ={lam:g}", arm_name(lam)) for lam in lambdas]
    for ax, key, title in (
        (axes[0], "collision_rate", "Collision rate"),
        (axes[1], "offroad_rate", "Off-road rate"),
    ):
        for label, arm in arms:
            s = summary.get(arm)
            if s is None or key not in s:
                continue
            sd = lambda v: v["sd"] or 0.0
            ax.errorbar(
                s["ade"]["mean"],
                s[key]["mean"],
                xerr=sd(s["ade"]),
                yerr=sd(s[key]),
                fmt="o",
                capsize=3,
                label=label,
            )
        ax.set_xlabel("ADE (m), held-out scenes")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("RL fine-tuning: mean ± sd over seeds")
    fig.tight_layout()
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def write_study(
    out_dir: str,
    per_policy: dict,
    arms: dict[str, list[str]],
    table1_rows: dict[str, str],
    lambdas: list[float],
    header: dict,
) -> dict:
    """table1.md, table2.md, results.json, plot.png under out_dir; returns results.json's dict."""
    summary = summarize_study(per_policy, arms)
    per_seed = {arm: [headline(per_policy[n]) for n in names] for arm, names in arms.items()}
    claims = claim_check(summary, lambdas, per_seed) if "bc" in summary else {}
    results_lib.write_text_atomic(
        os.path.join(out_dir, "table1.md"), table1_markdown(summary, table1_rows)
    )
    if "bc" in summary:
        results_lib.write_text_atomic(
            os.path.join(out_dir, "table2.md"), table2_markdown(summary, lambdas, claims)
        )
    if "collision_rate" in summary.get("bc", {}):
        write_plot(summary, lambdas, os.path.join(out_dir, "plot.png"))
    results = dict(header, arms=arms, summary=summary, claims=claims, per_policy=per_policy)
    results_lib.write_text_atomic(
        os.path.join(out_dir, "results.json"),
        json.dumps(results, indent=1, sort_keys=True, default=str) + "\n",
    )
    return results
