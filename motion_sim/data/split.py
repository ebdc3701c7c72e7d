"""Held-out split of scenes by scenario id: training and validation never share a scene.

The split is a function of the ids alone (a salted CRC32 rank), so adding files to a source or
reading them in another order cannot move a scene from validation into training unnoticed, and
the same id read twice (the bundled GPUDrive scene is also in ../shared/gpudrive) lands once.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

_SALT = b"motion_sim.split/v1:"


class SplitError(ValueError):
    """Training and validation scenes overlap, or a split cannot be formed."""


def id_rank(scenario_id: str) -> int:
    """Stable pseudo-random rank of an id (CRC32 of the salted id; ties broken by the id)."""
    return zlib.crc32(_SALT + scenario_id.encode())


def split_ids(ids: Iterable[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """Distinct ids -> (train, validation), both sorted; round(n * val_fraction) go to validation.

    The lowest-ranked ids (`id_rank`) form validation, so the split is deterministic and does
    not depend on the order the ids were read in.
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise SplitError(f"val_fraction must be in [0, 1], got {val_fraction}")
    unique = sorted(set(ids), key=lambda i: (id_rank(i), i))
    num_val = round(len(unique) * val_fraction)
    return sorted(unique[num_val:]), sorted(unique[:num_val])


def assert_disjoint(train_ids: Iterable[str], val_ids: Iterable[str]) -> None:
    """Raises SplitError naming the shared ids (up to 5) if the two sets overlap."""
    shared = sorted(set(train_ids) & set(val_ids))
    if shared:
        raise SplitError(
            f"{len(shared)} scenario id(s) are in both training and validation: {shared[:5]}"
        )
