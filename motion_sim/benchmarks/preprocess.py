r"""Preprocessing and input-pipeline throughput; prints one JSON line.

    python -m motion_sim.benchmarks.preprocess [--source=sample|synthetic] [--num_protos=40]

  * protos_per_s_per_worker: one process doing what a preprocess worker does per scenario --
    Scenario proto bytes -> parse -> RawScenario -> build_scene -> serialize (goal >= 20/s);
    `..._with_token_stats` adds the tokenizer reconstruction error that stats.json reports.
  * disk_pipeline_scenarios_per_s: `make_dataset` (the training input pipeline: interleaved
    GZIP shard reads, parse, shuffle, batch) over ONE pass of `--pipeline_scenes` (default
    1,024) DISTINCT synthetic scenes in `--pipeline_shards` shard files written to a temp dir
    (goal >= 2,000/s). The files were just written, so the OS page cache likely holds them: this
    measures the pipeline's CPU work, not a cold disk.
  * cached_pipeline_scenarios_per_s: the same scenes with `cache=True`, timed over a second
    pass after the first has filled the in-memory cache.
  * pipeline_distinct_scenes, pipeline_shards, pipeline_mb: the pipeline workload.
Converted protos are the bundled real WOMD Scenario protos (cycled) or synthetic ones with
`--synthetic_agents` tracks each; the pipeline's scenes are always synthetic
(`SyntheticScenarioGenerator`, one seeded scenario per index, `--synthetic_agents` tracks).
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


def define_flags() -> None:
    """Defined only when run as a program, so importing this module defines no global flags."""
    flags.DEFINE_enum("source", "sample", ["sample", "synthetic"], "Scenario protos to convert.")
    flags.DEFINE_integer("num_protos", 40, "Protos converted in the timed loop.")
    flags.DEFINE_integer("synthetic_agents", 160, "Tracks per synthetic scenario.")
    flags.DEFINE_integer(
        "pipeline_scenes", 1024, "Distinct scenes in the pipeline benchmark's shards."
    )
    flags.DEFINE_integer("pipeline_shards", 16, "Shard files the pipeline scenes are written to.")
    flags.DEFINE_integer("batch_size", 32, "Pipeline batch size.")


_SAMPLES = [
    os.path.join(os.path.dirname(__file__), "..", "data", "sample", name)
    for name in ("womd_scenario_input.tfrecord", "motion_data_one_scenario.tfrecord")
]


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


def _write_distinct_shards(out_dir: str) -> tuple[str, int]:
    """Writes `--pipeline_scenes` distinct synthetic scenes round-robin into
    `--pipeline_shards` GZIP shards; returns (glob, total bytes on disk)."""
    gen = SyntheticScenarioGenerator(num_agents=FLAGS.synthetic_agents, seed=1)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    paths = [
        os.path.join(out_dir, f"scenes-{k:05d}.tfrecord.gz") for k in range(FLAGS.pipeline_shards)
    ]
    writers = [tf.io.TFRecordWriter(p, options) for p in paths]
    for i in range(FLAGS.pipeline_scenes):
        scene, dropped = build_scene(gen.generate(i))
        writers[i % len(writers)].write(serialize_scene(scene, dropped))
    for w in writers:
        w.close()
    return os.path.join(out_dir, "*.tfrecord.gz"), sum(os.path.getsize(p) for p in paths)


def _pass_rate(iterator, num_batches: int) -> tuple[float, set]:
    """(scenes/s over `num_batches` batches, scenario ids seen)."""
    ids = set()
    start = time.perf_counter()
    for _ in range(num_batches):
        batch = next(iterator)
        ids.update(batch["scenario_id"].numpy().tolist())
    return num_batches * FLAGS.batch_size / (time.perf_counter() - start), ids


def pipeline_figures() -> dict:
    """Disk (first pass) and cached (second pass) pipeline rates over distinct scenes."""
    with tempfile.TemporaryDirectory() as tmp:
        pattern, size = _write_distinct_shards(tmp)
        num_batches = FLAGS.pipeline_scenes // FLAGS.batch_size
        disk, ids = _pass_rate(iter(make_dataset(pattern, FLAGS.batch_size, seed=0)), num_batches)
        cached_it = iter(make_dataset(pattern, FLAGS.batch_size, seed=0, cache=True))
        _pass_rate(cached_it, -(-FLAGS.pipeline_scenes // FLAGS.batch_size) + 1)  # fill
        cached, _ = _pass_rate(cached_it, num_batches)
    return {
        "disk_pipeline_scenarios_per_s": round(disk, 1),
        "cached_pipeline_scenarios_per_s": round(cached, 1),
        "pipeline_distinct_scenes": FLAGS.pipeline_scenes,
        "pipeline_distinct_scenes_read": len(ids),
        "pipeline_shards": FLAGS.pipeline_shards,
        "pipeline_mb": round(size / 2**20, 1),
    }


def main(argv) -> None:
    del argv
    protos = _protos()
    _convert(protos[0])  # warm-up (imports, first-call costs)
    rate, rate_cpu = _rate(_convert, protos)
    meter = _TokenErrorMeter()
    _convert(protos[0], meter)  # traces the tokenizer once
    rate_tokens, rate_tokens_cpu = _rate(lambda p: _convert(p, meter), protos)
    scene_bytes = len(_convert(protos[0]))
    print(
        json.dumps(
            {
                "source": FLAGS.source,
                "num_protos": len(protos),
                "protos_per_s_per_worker": round(rate, 1),
                "protos_per_cpu_s": round(rate_cpu, 1),
                "protos_per_s_per_worker_with_token_stats": round(rate_tokens, 1),
                "protos_per_cpu_s_with_token_stats": round(rate_tokens_cpu, 1),
                "load_average_1min": round(os.getloadavg()[0], 2),
                **pipeline_figures(),
                "batch_size": FLAGS.batch_size,
                "scene_record_bytes": scene_bytes,
            }
        )
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
