r"""Seconds per scenario of the official vs the fast WOSAC metrics, in one run.

  python -m motion_sim.benchmarks.metrics [--scenarios=... --rollouts=... --config=2025]

Prints one JSON line. Both backends start from the protos (the fast time includes the
proto -> array conversion); the fast time is measured after compilation, whose time is
reported separately. Defaults: the wheel's 32-rollout test submission on its scenario.
"""
from __future__ import annotations

import json
import os
import pathlib
import platform
import time

from absl import app
from absl import flags
# Module-level imports like every entry point. (TF 2.13 imported inside absl's main starts
# without an eager outer context, which turns a traced `tensor == tensor` into a Python bool;
# fast_features uses tf.equal for that reason -- tests/metrics/test_late_tf_import.py.)
import tensorflow as tf
from motion_sim.metrics import config as config_lib
from motion_sim.metrics import fast_metrics
from motion_sim.metrics import official_backend
from motion_sim.metrics import rollout_checks
from motion_sim.metrics import rollouts_io
from motion_sim.metrics import scenario_arrays

_REPO = pathlib.Path(__file__).resolve().parents[2]
_TESTDATA = _REPO / 'tests' / 'testdata' / 'metrics'
_SAMPLE = _REPO / 'motion_sim' / 'data' / 'sample'
_SCENARIOS = flags.DEFINE_string('scenarios', str(_SAMPLE / 'motion_data_one_scenario.tfrecord'),
                                 'Scenario TFRecord glob.')
_ROLLOUTS = flags.DEFINE_string('rollouts', str(_TESTDATA / 'test_submission.binproto'),
                                'Rollouts glob (binproto / .tar.gz).')
_CONFIG = flags.DEFINE_string('config', '2025', 'Metric config year.')
_FAST_REPEATS = flags.DEFINE_integer('fast_repeats', 5, 'Timed fast passes over the scenarios.')
_OFFICIAL = flags.DEFINE_bool('official', True, 'Also time the official backend (slow).')


def main(argv):
  del argv
  config = config_lib.load_config(_CONFIG.value)
  scenarios = {s.scenario_id: s for _, s in rollouts_io.read_scenarios(_SCENARIOS.value)}
  pairs = []
  for source, rollouts in rollouts_io.read_rollouts(_ROLLOUTS.value):
    rollout_checks.validate_rollouts(rollouts, scenarios[rollouts.scenario_id], source)
    pairs.append((scenarios[rollouts.scenario_id], rollouts))

  fast = fast_metrics.FastMetrics(config)

  def fast_pass():
    out = []
    for scenario, rollouts in pairs:
      arrays = scenario_arrays.scenario_arrays(scenario)
      out.append(fast.scenario_metrics(arrays, scenario_arrays.rollout_arrays(arrays, rollouts)))
    return out

  start = time.perf_counter()
  fast_result = fast_pass()  # compiles each distinct shape
  first_pass = time.perf_counter() - start
  times = []
  for _ in range(_FAST_REPEATS.value):
    start = time.perf_counter()
    last_result = fast_pass()
    times.append(time.perf_counter() - start)
  fast_s = min(times) / len(pairs)
  line = {
      'benchmark': 'wosac_metrics', 'config': _CONFIG.value, 'num_scenarios': len(pairs),
      'rollouts_per_scenario': len(pairs[0][1].joint_scenes),
      'fast_s_per_scenario': fast_s,
      'fast_s_per_scenario_median': sorted(times)[len(times) // 2] / len(pairs),
      'fast_compile_s': first_pass - fast_s * len(pairs),
      'fast_map_search_retries': fast.fallbacks,
      'fast_metametric': fast_result[0].metametric,
      'fast_metametric_last': last_result[0].metametric,
      'device': 'gpu' if tf.config.list_physical_devices('GPU') else 'cpu',
      'cpu_count': os.cpu_count(), 'platform': platform.processor() or platform.machine(),
  }
  if _OFFICIAL.value:
    start = time.perf_counter()
    official = [official_backend.official_scenario_metrics(config, s, r) for s, r in pairs]
    line['official_s_per_scenario'] = (time.perf_counter() - start) / len(pairs)
    line['speedup'] = line['official_s_per_scenario'] / fast_s
    line['max_abs_metametric_diff'] = max(
        abs(a.metametric - b.metametric) for a, b in zip(official, fast_result))
    line['official_metametric'] = official[0].metametric
  print(json.dumps(line), flush=True)

if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  app.run(main)
