"""Fast metrics compile once per `ShapeBucket`, however many distinct scenes they score."""

import numpy as np
import pytest

from motion_sim.data import scenario_writer, synthetic
from motion_sim.metrics import config as config_lib
from motion_sim.metrics import fast_metrics, scenario_arrays
from tests.fixtures import rollouts as rollout_fixtures


def test_choose_bucket_takes_the_first_that_holds_every_size():
    first = scenario_arrays.BUCKETS[0]
    assert scenario_arrays.choose_bucket(1, 10, 0, 1, 1) == first
    assert (
        scenario_arrays.choose_bucket(first.agents + 1, 10, 0, 1, 1) == scenario_arrays.BUCKETS[1]
    )
    # Map size alone moves a scene up too.
    assert scenario_arrays.choose_bucket(1, first.edge_segments + 1, 0, 1, 1).edge_segments > (
        first.edge_segments
    )
    # Beyond the largest: powers of two, outside the fixed set.
    huge = scenario_arrays.choose_bucket(3000, 10, 0, 1, 20)
    assert huge not in scenario_arrays.BUCKETS and huge.agents == 4096 and huge.eval_slots == 32


def _scenes():
    """12 distinct scene shapes: synthetic sizes (agents, lanes, road length) plus the two WOMD."""
    out = []
    for i, (agents, lanes, length) in enumerate(
        [
            (6, 1, 200),
            (9, 1, 300),
            (12, 2, 250),
            (15, 1, 400),
            (18, 2, 350),
            (21, 2, 300),
            (24, 1, 500),
            (27, 2, 450),
            (30, 2, 200),
            (10, 2, 500),
        ]
    ):
        generator = synthetic.SyntheticScenarioGenerator(
            num_agents=agents, lanes_per_direction=lanes, road_length_m=length, seed=i
        )
        out.append(scenario_writer.to_scenario_proto(generator.generate(0)))
    return out + [
        rollout_fixtures.load_scenario(p) for p in rollout_fixtures.SCENARIO_FILES.values()
    ]


@pytest.mark.slow
def test_distinct_scene_shapes_compile_at_most_once_per_bucket():
    fast = fast_metrics.FastMetrics(config_lib.load_config("2025"))
    traces = fast.num_traces()
    shapes, buckets = set(), set()
    for scenario in _scenes():
        arrays = scenario_arrays.scenario_arrays(scenario)
        shapes.add(
            (
                int(arrays.agent_mask.sum()),
                int(arrays.edge_valid.sum()),
                int(arrays.lane_valid.sum()),
                arrays.num_eval,
            )
        )
        buckets.add(arrays.bucket)
        rollouts = rollout_fixtures.make_rollouts(scenario, "noisy_log")
        metrics = fast.scenario_metrics(arrays, scenario_arrays.rollout_arrays(arrays, rollouts))
        assert np.isfinite(metrics.metametric)
    assert len(shapes) >= 10
    assert buckets <= set(scenario_arrays.BUCKETS)
    # One trace (= one XLA compilation) per bucket used, never per scene.
    # The compiled feature function is process-wide: buckets an earlier test compiled are reused
    # here, so this run adds at most one feature compilation per bucket it touched (fewer under
    # pytest). The score function belongs to this `FastMetrics`, so it compiles here at least once;
    # `compilations` counts calls that compiled either, so it too is at most one per bucket.
    new_traces = fast.num_traces() - traces
    assert new_traces <= len(buckets) <= len(scenario_arrays.BUCKETS)
    assert 1 <= fast.compilations <= len(buckets)
    assert fast.fallbacks == 0
