r"""Preprocessing and input-pipeline throughput; prints one JSON line.

    python -m motion_sim.benchmarks.preprocess [--source=sample|synthetic] [--num_protos=40]

  * protos_per_s_per_worker: one process doing what a preprocess worker does per scenario --
    Scenario proto bytes -> parse -> RawScenario -> build_scene -> serialize (goal >= 20/s);
    `..._with_token_stats` adds the tokenizer reconstruction error that stats.json reports.
  * cached_pipeline_scenarios_per_s: `make_dataset(..., cache=True)` after the first epoch has
    filled the cache (goal >= 2,000/s).
Inputs are the bundled real WOMD Scenario protos (cycled) or synthetic ones with
`--synthetic_agents` tracks each.
"""
from __future__ import annotations

import json
import os
import tempfile
import time

import tensorflow as tf
from absl import app, flags

from motion_sim.data import scenario_reader
from motion_sim.data.pipeline import make_dataset
from motion_sim.data.scenario_writer import to_scenario_proto
from motion_sim.data.scene_builder import build_scene
from motion_sim.data.scene_codec import serialize_scene
from motion_sim.data.shard_writer import _TokenErrorMeter
from motion_sim.data.synthetic import SyntheticScenarioGenerator

FLAGS = flags.FLAGS
flags.DEFINE_enum("source", "sample", ["sample", "synthetic"], "Scenario protos to convert.")
flags.DEFINE_integer("num_protos", 40, "Protos converted in the timed loop.")
flags.DEFINE_integer("synthetic_agents", 160, "Tracks per synthetic scenario.")
flags.DEFINE_integer("pipeline_scenes", 256, "Scenes in the pipeline benchmark's shards.")
flags.DEFINE_integer("batch_size", 32, "Pipeline batch size.")
flags.DEFINE_integer("pipeline_batches", 100, "Timed batches after the cache is filled.")

_SAMPLES = [os.path.join(os.path.dirname(__file__), "..", "data", "sample", name)
            for name in ("womd_scenario_input.tfrecord", "motion_data_one_scenario.tfrecord")]


def _protos() -> list[bytes]:
    if FLAGS.source == "sample":
        records = [r for path in _SAMPLES for _, r in scenario_reader.iter_scenario_records(path)]
    else:
        gen = SyntheticScenarioGenerator(num_agents=FLAGS.synthetic_agents, seed=0)
        records = [to_scenario_proto(gen.generate(i)).SerializeToString() for i in range(4)]
    return [records[i % len(records)] for i in range(FLAGS.num_protos)]


def _convert(serialized: bytes, meter=None) -> bytes:
    source = "bench:0"
    raw = scenario_reader.read_scenario_bytes(serialized, source)
    scene, dropped = build_scene(raw)
    if meter is not None:
        meter.add(scene)
    return serialize_scene(scene, dropped)


def _rate(fn, items) -> tuple[float, float]:
    """(items per wall second, items per CPU second of this process). On a shared, busy machine
    the CPU-time rate is the better estimate of a dedicated worker's throughput."""
    start, cpu_start = time.perf_counter(), time.process_time()
    for item in items:
        fn(item)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return len(items) / wall, len(items) / cpu


def _pipeline_rate(scenes: list[bytes]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        options = tf.io.TFRecordOptions(compression_type="GZIP")
        num_files = 4
        for k in range(num_files):
            with tf.io.TFRecordWriter(os.path.join(tmp, f"s-{k}.tfrecord.gz"), options) as w:
                for i in range(k, FLAGS.pipeline_scenes, num_files):
                    w.write(scenes[i % len(scenes)])
        ds = make_dataset(os.path.join(tmp, "*.tfrecord.gz"), FLAGS.batch_size, cache=True,
                          seed=0)
        iterator = iter(ds)
        for _ in range(FLAGS.pipeline_scenes // FLAGS.batch_size + 2):  # fill the cache
            next(iterator)
        start = time.perf_counter()
        for _ in range(FLAGS.pipeline_batches):
            batch = next(iterator)
        batch["agent_xy"].numpy()
        return FLAGS.pipeline_batches * FLAGS.batch_size / (time.perf_counter() - start)


def main(argv) -> None:
    del argv
    protos = _protos()
    _convert(protos[0])  # warm-up (imports, first-call costs)
    rate, rate_cpu = _rate(_convert, protos)
    meter = _TokenErrorMeter()
    _convert(protos[0], meter)  # traces the tokenizer once
    rate_tokens, rate_tokens_cpu = _rate(lambda p: _convert(p, meter), protos)
    scenes = [_convert(p) for p in protos[:8]]
    print(json.dumps({
        "source": FLAGS.source, "num_protos": len(protos),
        "protos_per_s_per_worker": round(rate, 1),
        "protos_per_cpu_s": round(rate_cpu, 1),
        "protos_per_s_per_worker_with_token_stats": round(rate_tokens, 1),
        "protos_per_cpu_s_with_token_stats": round(rate_tokens_cpu, 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cached_pipeline_scenarios_per_s": round(_pipeline_rate(scenes), 1),
        "batch_size": FLAGS.batch_size, "scene_record_bytes": len(scenes[0]),
    }))


if __name__ == "__main__":
    app.run(main)
