"""The experiment's data stages: a held-out split by scenario id, training shards, validation protos.

`build_train` (stage "data", before training): real scenes from every `real_sources` glob are
read, de-duplicated by scenario id and split by `split.split_ids`; synthetic scenes go to training
only. `build_heldout` (stage "heldout", before evaluation): `val_sources` scenes whose id is not
a training id join the held-out real scenes.
Training scenes are written as scene shards (`scene_codec`, what `motion_sim.train` reads),
validation scenes as WOMD Scenario protos (what WOSAC scoring reads; Scenario-proto inputs are
copied byte for byte, the other formats converted by `scenario_writer`). `split.json` records
both id lists, every skipped scene with its reason, and the duplicates dropped; the disjointness
is asserted before anything is written.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import sys
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
from absl import app, flags

from motion_sim.data import example_reader, gpudrive_reader, scenario_reader, split
from motion_sim.data.datatypes import CURRENT_INDEX, RawScenario, ScenarioError
from motion_sim.data.scene_builder import build_scene
from motion_sim.data.scene_codec import serialize_scene
from motion_sim.data.tfrecord_io import iter_records

TRAIN_SHARD = "train/scenes-00000-of-00001.tfrecord.gz"
VAL_SCENARIOS = "val/scenarios.tfrecord"
REAL_VAL = "val/real_heldout.tfrecord"
TRAIN_SPLIT_FILE = "train_split.json"
SPLIT_FILE = "split.json"


def expand_source(source: str, repo_root: str, shared: str) -> tuple[str, list[str]]:
    """ "FORMAT:GLOB" -> (format, sorted files); relative globs are read from the repo root."""
    fmt, _, pattern = source.partition(":")
    pattern = pattern.replace("{shared}", shared)
    if "://" not in pattern and not os.path.isabs(pattern):
        pattern = os.path.join(repo_root, pattern)
    files = sorted(tf.io.gfile.glob(pattern) if "://" in pattern else glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"experiment source {source!r} ({pattern}) matches no files")
    return fmt, files


def read_source(
    fmt: str, files: list[str], skipped: collections.Counter, skipped_examples: list
) -> Iterator[tuple[str, RawScenario, bytes | None]]:
    """(source, RawScenario, original Scenario bytes or None) per readable scene; bad ones counted."""
    for path in files:
        records = [(0, None)] if fmt == "gpudrive" else iter_records(path)
        for index, payload in records:
            source = f"{path}:{index}"
            try:
                if fmt == "gpudrive":
                    raw = gpudrive_reader.read_gpudrive_file(path)
                elif fmt == "example":
                    raw = example_reader.read_motion_example(
                        example_reader.parse_example_bytes(payload, source), source
                    )
                else:
                    raw = scenario_reader.read_scenario_bytes(payload, source)
                build_scene(raw)  # a scene training or scoring cannot use is skipped here
            except ScenarioError as e:
                skipped[e.reason] += 1
                skipped_examples.append(str(e)[:300])
                continue
            if raw.history_only:  # a test-split scene: no future to train on or score against
                skipped["history_only"] += 1
                skipped_examples.append(f"{source}: history only (test split)")
                continue
            yield source, raw, (payload if fmt == "scenario" else None)


def _write_records(path: str, records: list[bytes], gzip: bool) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    tmp = f"{path}.tmp-{os.getpid()}"
    with tf.io.TFRecordWriter(tmp, "GZIP" if gzip else None) as writer:
        for record in records:
            writer.write(record)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def _scene_record(raw: RawScenario) -> bytes:
    scene, dropped = build_scene(raw)
    return serialize_scene(scene, dropped)


MAX_EVALUATED_TRACKS = 8  # WOMD's tracks_to_predict hold at most 8 agents


def with_evaluated_tracks(raw: RawScenario) -> tuple[RawScenario, bool]:
    """(raw with tracks_to_predict filled if the source gave none, whether it was filled).

    WOSAC scores only the SDC and `tracks_to_predict`; older GPUDrive/Nocturne files carry no
    such list, which would leave one scored agent per scene. Filled like WOMD's choice: up to
    8 non-SDC agents valid at the current step and at every future step (fully observed, so
    their ADE and collisions are scored over the whole 8 s), nearest to the SDC first.
    """
    if len(raw.tracks_to_predict):
        return raw, False
    current = raw.xyz[:, CURRENT_INDEX, :2]
    full = raw.valid[:, CURRENT_INDEX:].all(axis=1)
    full[raw.sdc_index] = False
    rows = np.flatnonzero(full)
    dist = np.linalg.norm(current[rows] - current[raw.sdc_index], axis=-1)
    chosen = rows[np.argsort(dist, kind="stable")[:MAX_EVALUATED_TRACKS]]
    return raw._replace(tracks_to_predict=np.sort(chosen).astype(np.int32)), True


def _scenario_record(raw: RawScenario, original: bytes | None) -> bytes:
    if original is not None:
        return original
    from motion_sim.data.scenario_writer import (
        to_scenario_proto,  # proto deps only here
    )

    return to_scenario_proto(raw).SerializeToString()


def _write_json(path: str, value: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def build_train(cfg, data_dir: str, repo_root: str, shared: str) -> dict:
    """Training shards + the real scenes held out by id rank; writes train_split.json.

    The real pool is split here (before any training), so which real scenes are held out never
    depends on how training went; `build_heldout` later adds `val_sources`.
    """
    skipped, skipped_examples = collections.Counter(), []
    real, duplicates = {}, []
    for source in cfg.real_sources:
        fmt, files = expand_source(source, repo_root, shared)
        for src, raw, original in read_source(fmt, files, skipped, skipped_examples):
            if raw.scenario_id in real:
                duplicates.append(
                    {
                        "scenario_id": raw.scenario_id,
                        "source": src,
                        "kept": real[raw.scenario_id][0],
                    }
                )
                continue
            real[raw.scenario_id] = (src, raw, original)
    train_ids, val_ids = split.split_ids(real, cfg.val_fraction)
    train = {i: real[i] for i in train_ids}
    if cfg.num_synthetic:
        from motion_sim.data.synthetic import SyntheticScenarioGenerator

        gen = SyntheticScenarioGenerator(num_agents=cfg.synthetic_agents, seed=0)
        for index in range(cfg.num_synthetic):
            raw = gen.generate(index)
            train[raw.scenario_id] = (raw.source, raw, None)
    if not train and not cfg.train_shards and not cfg.preprocess_train:
        raise split.SplitError("the training set is empty")
    split.assert_disjoint(train, val_ids)
    os.makedirs(data_dir, exist_ok=True)
    if train:
        _write_records(
            os.path.join(data_dir, TRAIN_SHARD),
            [_scene_record(raw) for _, raw, _ in train.values()],
            gzip=True,
        )
    _write_records(
        os.path.join(data_dir, REAL_VAL),
        [_scenario_record(with_evaluated_tracks(real[i][1])[0], real[i][2]) for i in val_ids],
        gzip=False,
    )
    result = {
        "train_ids": sorted(train),
        "real_val_ids": val_ids,
        "train_sources": {i: train[i][0] for i in sorted(train)},
        "real_val_sources": {i: real[i][0] for i in val_ids},
        "num_train": len(train),
        "num_real_train": len(set(train) & set(real)),
        "skipped": dict(skipped),
        "skipped_examples": skipped_examples,
        "duplicates_dropped": duplicates,
        "val_fraction": cfg.val_fraction,
    }
    _write_json(os.path.join(data_dir, TRAIN_SPLIT_FILE), result)
    return result


def build_heldout(cfg, data_dir: str, repo_root: str, shared: str) -> dict:
    """Validation Scenario protos (held-out real scenes + `val_sources` minus any training id)
    and split.json with both id lists; asserts they are disjoint."""
    with open(os.path.join(data_dir, TRAIN_SPLIT_FILE)) as f:
        result = json.load(f)
    train = set(result["train_ids"])
    skipped, skipped_examples = collections.Counter(result["skipped"]), []
    duplicates = list(result["duplicates_dropped"])
    val, evaluated_filled = {}, {}
    for source, scenario in _read_scenarios(os.path.join(data_dir, REAL_VAL)):
        val[scenario.scenario_id] = (source, None, scenario.SerializeToString())
    for source in cfg.val_sources:
        fmt, files = expand_source(source, repo_root, shared)
        for src, raw, original in read_source(fmt, files, skipped, skipped_examples):
            if raw.scenario_id in train:
                duplicates.append(
                    {
                        "scenario_id": raw.scenario_id,
                        "source": src,
                        "kept": "training (so not held out)",
                    }
                )
            elif raw.scenario_id in val:
                duplicates.append(
                    {"scenario_id": raw.scenario_id, "source": src, "kept": val[raw.scenario_id][0]}
                )
            else:
                raw, filled = with_evaluated_tracks(raw)
                if filled:
                    evaluated_filled[raw.scenario_id] = len(raw.tracks_to_predict)
                val[raw.scenario_id] = (src, raw, original)
    if cfg.val_max_scenes:
        keep = sorted(val, key=lambda i: (split.id_rank(i), i))[: cfg.val_max_scenes]
        val = {i: val[i] for i in keep}
    if not val:
        raise split.SplitError("the validation set is empty (no readable held-out scene)")
    split.assert_disjoint(train, val)
    order = sorted(val)
    _write_records(
        os.path.join(data_dir, VAL_SCENARIOS),
        [_scenario_record(val[i][1], val[i][2]) for i in order],
        gzip=False,
    )
    result.update(
        val_ids=order,
        val_sources={i: val[i][0] for i in order},
        num_val=len(order),
        tracks_to_predict_filled={i: n for i, n in evaluated_filled.items() if i in val},
        skipped=dict(skipped),
        duplicates_dropped=duplicates,
        skipped_examples=result["skipped_examples"] + skipped_examples,
    )
    _write_json(os.path.join(data_dir, SPLIT_FILE), result)
    return result


def _read_scenarios(path: str):
    """[(source, Scenario)] of a file `build_train` wrote (possibly empty)."""
    return [
        (f"{path}:{i}", scenario_reader.parse_scenario_bytes(record, f"{path}:{i}"))
        for i, record in iter_records(path)
    ]


def ids_in_shards(pattern: str) -> list[str]:
    """Scenario ids of every scene in preprocessed shards (comma-separated globs)."""
    from motion_sim.data.scene_codec import decode_scene

    ids = []
    for part in pattern.split(","):
        for path in sorted(tf.io.gfile.glob(part.strip())):
            gzip = "GZIP" if path.endswith(".gz") else ""
            for record in tf.data.TFRecordDataset(path, compression_type=gzip):
                scenario_id = decode_scene(record.numpy())[0].scenario_id
                ids.append(
                    scenario_id.decode() if isinstance(scenario_id, bytes) else str(scenario_id)
                )
    return ids


def check_split(data_dir: str, train_shards: str = "") -> dict:
    """Re-reads split.json (and the ids inside extra training shards) and asserts disjointness."""
    with open(os.path.join(data_dir, SPLIT_FILE)) as f:
        result = json.load(f)
    train = set(result["train_ids"]) | (set(ids_in_shards(train_shards)) if train_shards else set())
    split.assert_disjoint(train, result["val_ids"])
    return result


def main(argv) -> int:
    """CLI: assert that held-out Scenario protos share no id with training shards (the demo)."""
    del argv
    f = flags.FLAGS
    train = ids_in_shards(f.train_shards)
    held_out = [s.scenario_id for _, s in _read_scenarios_glob(f.heldout)]
    if not train or not held_out:
        print(
            f"experiment_data: error: no scenes in --train_shards={f.train_shards!r} or "
            f"--heldout={f.heldout!r}",
            file=sys.stderr,
        )
        return 2
    try:
        split.assert_disjoint(train, held_out)
    except split.SplitError as e:
        print(f"experiment_data: error: {e} (delete stale shards and re-run)", file=sys.stderr)
        return 1
    result = {"train_ids": sorted(set(train)), "val_ids": sorted(set(held_out))}
    os.makedirs(os.path.dirname(os.path.abspath(f.output)), exist_ok=True)
    _write_json(f.output, result)
    print(json.dumps({"num_train": len(result["train_ids"]), "val_ids": result["val_ids"]}))
    return 0


def _read_scenarios_glob(pattern: str):
    return [pair for path in sorted(tf.io.gfile.glob(pattern)) for pair in _read_scenarios(path)]


if __name__ == "__main__":
    flags.DEFINE_string("train_shards", None, "Glob(s) of training scene shards.")
    flags.DEFINE_string("heldout", None, "Glob of held-out Scenario-proto TFRecords.")
    flags.DEFINE_string("output", None, "split.json to write.")
    flags.mark_flags_as_required(["train_shards", "heldout", "output"])
    app.run(lambda argv: sys.exit(main(argv)))
