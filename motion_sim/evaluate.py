r"""Scores WOSAC rollouts with the official or the fast (XLA) metrics.

  python -m motion_sim.evaluate --scenarios='/data/validation/*.tfrecord*' \
      --rollouts='/runs/x/submission.binproto-*' --config=2025 --backend=fast \
      --output=/runs/x/wosac.json

`--rollouts` takes comma-separated globs of binproto files (SimAgentsChallengeSubmission or
ScenarioRollouts) or .tar.gz archives of them; `--saved_model=DIR` instead generates the rollouts
with an exported model (export/saved_model_rollouts.py). Writes FILE.json (official field names)
and FILE.md (a Table-1 row). Bad input stops the run with an error naming the file, scenario
and cause.

History-only scenes (the WOMD test split: 11 steps) have no logged future to score against:
with --rollouts they are a one-line error naming the scene; with --saved_model their rollouts
are generated and validated but not scored (listed under `unscored`), and
`--rollouts_output=FILE` keeps every generated rollout (a SimAgentsChallengeSubmission
binproto that `--rollouts` reads back). When no scene can be scored that file is the output.
"""
from __future__ import annotations

import os
import pathlib
import sys
import time
from typing import Iterator

from absl import app
from absl import flags
from absl import logging
import tqdm

from motion_sim.metrics import config as config_lib
from motion_sim.metrics import history_only
from motion_sim.metrics import rollout_checks
from motion_sim.metrics import rollouts_io
from motion_sim.metrics import results as results_lib

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defined only when run as a program, so importing this module (tests, report) defines no
  global flags that could collide with another CLI's."""
  flags.DEFINE_string('scenarios', None, 'Comma-separated globs of Scenario TFRecords.')
  flags.DEFINE_string('rollouts', None, 'Comma-separated globs of rollout binprotos '
                      'or .tar.gz archives of them.')
  flags.DEFINE_string('saved_model', None, 'Exported SavedModel that generates the '
                      'rollouts (instead of --rollouts).')
  flags.DEFINE_integer('seed', 0, 'Rollout seed for --saved_model.')
  flags.DEFINE_string('rollouts_output', None, 'With --saved_model: also write the generated '
                      'rollouts to this binproto (the only output for history-only scenes).')
  flags.DEFINE_enum('config', '2025', list(config_lib.CONFIG_YEARS), 'Metric config year.')
  flags.DEFINE_enum('backend', 'fast', ['official', 'fast'], 'Metric implementation.')
  flags.DEFINE_string('output', None, 'Output JSON path (FILE.md is written beside it).')
  flags.DEFINE_integer('num_workers', 1, 'Worker processes scoring scenarios (each fast '
                       'worker compiles its shape buckets once).')
  flags.DEFINE_string('method_name', None, 'Row name in the markdown table '
                      '(default: the output file stem).')


def _pairs(scenarios: dict, rollout_pattern: str | None, saved_model: str | None, seed: int
           ) -> Iterator[tuple[str, object, object]]:
  """Yields (source, Scenario, ScenarioRollouts), all validated."""
  if saved_model:
    # Imported here: the export stack (model code) is only needed for this branch.
    from export import saved_model_rollouts  # pylint: disable=import-outside-toplevel
    for scenario_id, (source, scenario) in scenarios.items():
      rollouts = saved_model_rollouts.generate_scenario_rollouts(saved_model, scenario, seed)
      rollout_checks.validate_rollouts(rollouts, scenario, f'{saved_model} on {source}')
      yield source, scenario, rollouts
    return
  seen = {}
  for source, rollouts in rollouts_io.read_rollouts(rollout_pattern):
    scenario_id = rollouts.scenario_id
    if scenario_id not in scenarios:
      raise rollout_checks.RolloutError(
          source, f'unknown id: scenario {scenario_id!r} is not in the --scenarios files '
          f'({len(scenarios)} scenarios)', reason='unknown_id')
    if scenario_id in seen:
      raise rollout_checks.RolloutError(
          source, f'scenario {scenario_id} appears twice (also in {seen[scenario_id]})',
          reason='duplicate_scenario')
    seen[scenario_id] = source
    scenario = scenarios[scenario_id][1]
    rollout_checks.validate_rollouts(rollouts, scenario, source)
    yield source, scenario, rollouts
  missing = sorted(set(scenarios) - set(seen))
  if missing:
    raise rollout_checks.RolloutError(
        rollout_pattern, f'submission is missing {len(missing)} scenario(s) of --scenarios: '
        f'{missing[:5]}{" ..." if len(missing) > 5 else ""}', reason='missing_scenario')


def _timed(items: Iterator, timing: dict, key: str) -> Iterator:
  """Passes `items` through, adding the time spent producing them to timing[key]."""
  items = iter(items)
  while True:
    start = time.perf_counter()
    try:
      item = next(items)
    except StopIteration:
      return
    finally:
      timing[key] += time.perf_counter() - start
    yield item


def evaluate(scenario_pattern: str, rollout_pattern: str | None = None,
             saved_model: str | None = None, year: str = '2025', backend: str = 'fast',
             num_workers: int = 1, seed: int = 0, rollouts_output: str | None = None) -> dict:
  """Scores every scenario; returns the results dict (see `results.summarize`; history-only
  scenes: see the module doc -- if none is left to score, only `unscored` and
  `rollouts_output`, with `num_scenarios` 0).

  `timing` in the result: seconds reading the scenarios, reading + validating (+ generating,
  with a saved model) the rollouts (`decode`), and for the fast backend the summed
  per-process seconds converting protos to arrays, compiling and computing the features.
  """
  if (rollout_pattern is None) == (saved_model is None):
    raise ValueError('give exactly one of rollouts / saved_model')
  config = config_lib.load_config(year)
  start = time.time()
  scenarios = {}
  for source, scenario in rollouts_io.read_scenarios(scenario_pattern):
    scenarios.setdefault(scenario.scenario_id, (source, scenario))
  generated, unscored = _history_only_rollouts(scenarios, saved_model, seed)
  timing = {'read_scenarios': time.time() - start, 'decode': 0.0}
  logging.info('%d scenarios from %s', len(scenarios), scenario_pattern)
  pairs = _timed(_pairs(scenarios, rollout_pattern, saved_model, seed), timing, 'decode')

  def keep(pairs):  # the scored scenes' rollouts go to --rollouts_output too
    for source, scenario, rollouts in pairs:
      generated.append(rollouts)
      yield source, scenario, rollouts

  pairs = keep(pairs) if rollouts_output else pairs
  start = time.time()
  if backend == 'official':
    from motion_sim.metrics import official_backend  # pylint: disable=import-outside-toplevel
    runner = official_backend.OfficialBackend(config, num_workers)
    scored = runner.map((s, r) for _, s, r in pairs)
  elif backend == 'fast':
    from motion_sim.metrics import fast_backend  # pylint: disable=import-outside-toplevel
    runner = fast_backend.FastBackend(config, num_workers)
    scored = runner.map(pairs)
  else:
    raise ValueError(f'unknown backend {backend!r}')
  # Streams: one scenario at a time (a bounded window with workers), ETA from tqdm.
  per_scenario = list(tqdm.tqdm(scored, total=len(scenarios), desc=f'WOSAC {backend}',
                                unit='scenario', disable=None, dynamic_ncols=True))
  if rollouts_output:
    history_only.write_rollouts(rollouts_output, generated)
  nothing_scored = unscored and not per_scenario
  results = {} if nothing_scored else results_lib.summarize(config, per_scenario)
  results.update(unscored=unscored, rollouts_output=rollouts_output)
  if backend == 'fast':
    timing.update(runner.stats)
  results.update(config=year, backend=backend, num_scenarios=len(per_scenario),
                 seconds=time.time() - start, num_workers=num_workers, timing=timing)
  return results


def _history_only_rollouts(scenarios: dict, saved_model: str | None, seed: int):
  """Removes the history-only scenes from `scenarios`; returns their validated rollouts by
  `saved_model` and their `unscored` entries. With --rollouts they are an error."""
  generated, unscored = [], []
  for scenario_id, (source, scenario) in list(scenarios.items()):
    if not history_only.is_history_only(scenario):
      continue
    if not saved_model:
      raise history_only.no_future_error(source, scenario_id)
    from export import saved_model_rollouts  # pylint: disable=import-outside-toplevel
    rollouts = saved_model_rollouts.generate_scenario_rollouts(saved_model, scenario, seed)
    rollout_checks.validate_rollouts(rollouts, scenario, f'{saved_model} on {source}')
    generated.append(rollouts)
    unscored.append({'scenario_id': scenario_id, 'source': source,
                     'reason': 'no logged future to score against (history-only)'})
    del scenarios[scenario_id]
    logging.warning('%s: scenario %s is history-only: rollouts generated, not scored', source,
                    scenario_id)
  return generated, unscored


def time_split(results: dict) -> str:
  """One line: where the time of an `evaluate` run went."""
  t = results['timing']
  parts = [f'{results["num_scenarios"]} scenarios in {results["seconds"]:.1f} s',
           f'{results["num_workers"]} worker(s)', f'read scenarios {t["read_scenarios"]:.1f} s',
           f'decode + validate rollouts {t["decode"]:.1f} s']
  if results['backend'] == 'fast':
    parts += [f'protos -> arrays {t["arrays"]:.1f} s', f'compile {t["compile"]:.1f} s',
              f'{t["compilations"]} compilation(s)', f'features {t["features"]:.1f} s',
              f'exact-fallback steps {t["fallback_steps"]} in {t["fallbacks"]} scenario(s)',
              '(fast parts summed over workers)']
  return 'time split: ' + ', '.join(parts)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}')
  if not FLAGS.scenarios or not FLAGS.output:
    raise app.UsageError('--scenarios and --output are required')
  if (FLAGS.rollouts is None) == (FLAGS.saved_model is None):
    raise app.UsageError('give exactly one of --rollouts / --saved_model')
  try:
    results = evaluate(FLAGS.scenarios, FLAGS.rollouts, FLAGS.saved_model, FLAGS.config,
                       FLAGS.backend, FLAGS.num_workers, FLAGS.seed, FLAGS.rollouts_output)
  except rollout_checks.RolloutError as e:
    print(f'evaluate: bad input: {e}', file=sys.stderr)
    return 2
  if results['unscored'] and not results['num_scenarios']:  # every scene was history-only
    return _report_unscored(results)
  output = pathlib.Path(FLAGS.output)
  results_lib.write_json(output, results)
  method = FLAGS.method_name or output.stem
  results_lib.write_table1({method: results}, output.with_suffix('.md'))
  buckets = results['buckets']
  logging.info('%d scenarios: realism %.4f kinematic %.4f interactive %.4f map %.4f minADE %.3f',
               results['num_scenarios'], buckets['realism_meta_metric'],
               buckets['kinematic_metrics'], buckets['interactive_metrics'],
               buckets['map_based_metrics'], buckets['min_ade'])
  print(time_split(results))
  print(f'wrote {output} and {output.with_suffix(".md")}')
  return 0


def _report_unscored(results: dict) -> int:
  """Exit status and one line when no scene had a logged future to score against."""
  first = results['unscored'][0]
  if not results['rollouts_output']:
    error = history_only.no_future_error(
        first['source'], first['scenario_id'],
        '; its rollouts were generated and validated: pass --rollouts_output=FILE to keep them')
    print(f'evaluate: bad input: {error}', file=sys.stderr)
    return 2
  print(f"evaluate: wrote the rollouts of {len(results['unscored'])} history-only scenario(s) "
        f"to {results['rollouts_output']}; none has a logged future to score against")
  return 0


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  define_flags()
  app.run(main)
