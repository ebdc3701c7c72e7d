"""Computes the official WOSAC metrics of every test case ONCE -> official_reference.json.

The official backend needs ~1 min per scenario and config on a 2-core CPU, too slow for the
default test suite; the fast backend is compared against this checked-in file instead.
Run: .venv/bin/python tests/testdata/metrics/make_reference.py  (a few minutes per case)
"""
import json
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "metrics"))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
from motion_sim.metrics import config as config_lib
from waymo_open_dataset.utils.sim_agents import submission_specs
from waymo_open_dataset.wdl_limited.sim_agents_metrics import metric_features
from waymo_open_dataset.wdl_limited.sim_agents_metrics import metrics
import rollout_fixtures  # tests/metrics


def main():
  out_path = rollout_fixtures.TESTDATA / 'official_reference.json'
  results = json.loads(out_path.read_text()) if out_path.exists() else {}
  configs = {year: config_lib.load_config(year) for year in config_lib.CONFIG_YEARS}
  for name, scenario, rollouts in rollout_fixtures.cases():
    if all(f'{year}/{name}' in results for year in configs):
      continue
    start = time.time()
    # This is `metrics.compute_scenario_metrics_for_bundle` split in two: the features (the
    # slow part) do not depend on the config, so they are computed once for all years.
    log_features, sim_features = metric_features.compute_scenario_rollouts_features(
        scenario, rollouts, submission_specs.ChallengeType.SIM_AGENTS)
    for year, config in configs.items():
      m = metrics.compute_scenario_metrics_for_features_bundle(
          config, scenario.scenario_id, log_features, sim_features)
      results[f'{year}/{name}'] = json_format.MessageToDict(m, preserving_proto_field_name=True)
      print(f'{year}/{name}: metametric {m.metametric:.4f}', flush=True)
    print(f'{name}: {time.time() - start:.1f} s', flush=True)
    tmp = out_path.with_suffix('.tmp')
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True))
    tmp.replace(out_path)


if __name__ == '__main__':
  main()
