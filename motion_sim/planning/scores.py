"""How well a world ranks and scores planners against the ground truth (paper Tables 3-4).

Per world, each planner's return is its mean over scenes and rollouts. Against the ground
truth (log playback):
  spearman: rank correlation of the planners' returns (scipy.stats.spearmanr);
  mae: mean |return - true return| after both are normalised by the truth's min-max over
    the planners ((x - min) / (max - min));
  regret@k: true return of the truly best planner minus the best true return among the world's
    top-k planners, in the same normalised units (0 = the world picks a truly best one).
Error bars: the same statistics over scene bootstrap resamples (std and 2.5/97.5 percentiles).
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def compare(estimate: np.ndarray, truth: np.ndarray, ks=(1, 5)) -> dict:
    """Statistics of per-planner returns estimate [P] vs truth [P]."""
    estimate = np.asarray(estimate, np.float64)
    truth = np.asarray(truth, np.float64)
    lo, hi = truth.min(), truth.max()
    span = hi - lo if hi > lo else 1.0
    norm = lambda x: (x - lo) / span  # noqa: E731
    if np.ptp(estimate) == 0 or np.ptp(truth) == 0:
        rho = 1.0 if np.array_equal(estimate, truth) else 0.0  # undefined ranks
    else:
        rho = float(stats.spearmanr(estimate, truth).statistic)
    out = {"spearman": rho, "mae": float(np.mean(np.abs(norm(estimate) - norm(truth))))}
    order = np.argsort(-estimate, kind="stable")
    for k in ks:
        out[f"regret@{k}"] = float(norm(truth.max()) - norm(truth[order[:k]].max()))
    return out


def compare_with_bootstrap(
    estimate: np.ndarray, truth: np.ndarray, num_samples: int = 1000, seed: int = 0, ks=(1, 5)
) -> dict:
    """`compare` of scene-mean returns, with scene-bootstrap error bars.

    Args: estimate, truth: [S, P] per-scene returns (mean over rollouts) of one world and the
      ground truth. Returns {stat: {"value", "std", "lo", "hi"}}.
    """
    estimate = np.asarray(estimate, np.float64)
    truth = np.asarray(truth, np.float64)
    point = compare(estimate.mean(0), truth.mean(0), ks)
    rng = np.random.default_rng(seed)
    num_scenes = estimate.shape[0]
    draws = {k: [] for k in point}
    for _ in range(num_samples):
        idx = rng.integers(0, num_scenes, num_scenes)
        for k, v in compare(estimate[idx].mean(0), truth[idx].mean(0), ks).items():
            draws[k].append(v)
    return {
        k: {
            "value": point[k],
            "std": float(np.std(draws[k])),
            "lo": float(np.percentile(draws[k], 2.5)),
            "hi": float(np.percentile(draws[k], 97.5)),
        }
        for k in point
    }
