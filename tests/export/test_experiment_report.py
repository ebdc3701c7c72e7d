"""The experiment's tables and claim check from hand-made per-policy results."""

import json

from export import experiment_report as er


def _result(collision, ade, offroad=0.1, composite=0.5):
    agg = {key: 0.5 for key, _ in er.LIKELIHOODS_2023}
    agg.update(
        metametric=composite, average_displacement_error=ade, min_average_displacement_error=ade / 2
    )
    buckets = {key: 0.6 for key, _ in er.BUCKETS_2025}
    buckets.update(simulated_collision_rate=collision, simulated_offroad_rate=offroad)
    return {
        "2023": {"aggregate": agg, "buckets": {}},
        "2025": {"aggregate": dict(agg), "buckets": buckets},
    }


def _study():
    # bc: collision 0.5; lambda 0: 0.45; lambda 2: 0.3 (-40% vs bc, -33% vs lambda 0) at ADE
    # +5%, except seed 2 whose ADE rises 20% (fails the +10% bound).
    per_policy = {"constant_velocity": _result(0.2, 3.0)}
    for s, ade2 in enumerate([2.1, 2.1, 2.4]):
        per_policy[f"bc_s{s}"] = _result(0.5, 2.0)
        per_policy[f"rl_lam0_s{s}"] = _result(0.45, 2.0)
        per_policy[f"rl_lam2_s{s}"] = _result(0.3, ade2)
    arms = {"constant_velocity": ["constant_velocity"]}
    arms.update({a: [f"{a}_s{s}" for s in range(3)] for a in ("bc", "rl_lam0", "rl_lam2")})
    return per_policy, arms


def test_summary_claims_and_files(tmp_path):
    per_policy, arms = _study()
    rows = {"Constant velocity": "constant_velocity", "BC": "bc", "BC + RL (λ = 2)": "rl_lam2"}
    results = er.write_study(str(tmp_path), per_policy, arms, rows, [0.0, 2.0], {"x": 1})
    summary = results["summary"]
    assert summary["bc"]["collision_rate"] == {
        "mean": 0.5,
        "sd": 0.0,
        "n": 3,
        "values": [0.5, 0.5, 0.5],
    }
    assert summary["constant_velocity"]["ade"]["sd"] is None  # one run: no spread
    assert abs(summary["rl_lam2"]["ade"]["mean"] - 2.2) < 1e-9
    claim = results["claims"]["2"]
    assert abs(claim["bc"]["collision_drop"] - 0.4) < 1e-9
    assert abs(claim["lambda0"]["collision_drop"] - (0.15 / 0.45)) < 1e-9
    assert claim["bc"]["holds_on_means"]  # mean ADE +10% exactly: within the bound
    assert claim["seeds_holding_both"] == 2 and claim["seeds"] == 3
    assert claim["holds"] is False  # seed 2 fails: the claim must hold across seeds
    table1 = (tmp_path / "table1.md").read_text()
    assert "| BC + RL (λ = 2) |" in table1 and "0.300 ± 0.000" in table1
    assert "| Constant velocity |" in table1 and "Composite (2023)" in table1
    table2 = (tmp_path / "table2.md").read_text()
    assert "| 2 |" in table2 and "-40%" in table2 and "-33%" in table2 and "2/3" in table2
    assert (tmp_path / "plot.png").stat().st_size > 1000
    assert json.loads((tmp_path / "results.json").read_text())["x"] == 1
