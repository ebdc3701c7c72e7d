"""The random-shooting candidate library and the 64 planners (J candidates, D token steps).

A candidate holds one curvature and one acceleration for its whole horizon. The library is a
9 x 9 curvature x acceleration grid in one fixed order that starts with its 3 x 3 core (the
gentlest actions) and then widens ring by ring, so a planner with J candidates uses the first J
and every larger planner contains every smaller one.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

MAX_CURVATURE = 0.3  # 1/m, common driving-simulator limit (|kappa| <= 0.3)
MAX_ACCEL = 6.0  # m/s^2
# Finer near zero: lane keeping needs curvatures of a few 1e-3, turns 0.03-0.1, U-turns 0.3.
CURVATURES = (-0.3, -0.1, -0.03, -0.01, 0.0, 0.01, 0.03, 0.1, 0.3)
ACCELERATIONS = (-6.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 6.0)
NUM_CANDIDATES = (9, 14, 19, 23, 28, 33, 38, 43, 47, 52, 57, 62, 66, 71, 76, 81)
HORIZONS = (6, 8, 12, 16)  # token steps (2 Hz): 3, 4, 6, 8 s


class Library(NamedTuple):
    """The ordered candidate library.

    Attributes:
      curvature: [81] float32 (1/m).
      accel: [81] float32 (m/s^2).
    """

    curvature: np.ndarray
    accel: np.ndarray


def library() -> Library:
    """The 81 candidates: centre first, then the rest of the 3 x 3 core, then ring by ring.

    Order key: (Chebyshev ring around the centre, L1 distance, curvature index, accel index),
    so the first 9 are exactly the core and each prefix is symmetric up to its last ring.
    """
    c = len(CURVATURES) // 2
    cells = [(i, j) for i in range(len(CURVATURES)) for j in range(len(ACCELERATIONS))]
    cells.sort(
        key=lambda ij: (
            max(abs(ij[0] - c), abs(ij[1] - c)),
            abs(ij[0] - c) + abs(ij[1] - c),
            ij[0],
            ij[1],
        )
    )
    return Library(
        np.array([CURVATURES[i] for i, _ in cells], np.float32),
        np.array([ACCELERATIONS[j] for _, j in cells], np.float32),
    )


class PlannerSet(NamedTuple):
    """The planners evaluated together.

    Attributes:
      num_candidates: [P] int32 J (uses library candidates 0..J-1).
      horizon: [P] int32 D in token steps.
    """

    num_candidates: np.ndarray
    horizon: np.ndarray

    @property
    def names(self) -> list[str]:
        return [f"J{j}_D{d}" for j, d in zip(self.num_candidates, self.horizon)]


def planner_set(num_candidates=NUM_CANDIDATES, horizons=HORIZONS) -> PlannerSet:
    """All (J, D) pairs, J-major: the paper's 16 x 4 = 64 planners by default."""
    if len(set(num_candidates)) != len(num_candidates) or not all(
        1 <= j <= len(CURVATURES) * len(ACCELERATIONS) for j in num_candidates
    ):
        raise ValueError(f"candidate counts must be distinct, in 1..81: {num_candidates}")
    j, d = np.meshgrid(np.asarray(num_candidates), np.asarray(horizons), indexing="ij")
    return PlannerSet(j.reshape(-1).astype(np.int32), d.reshape(-1).astype(np.int32))
