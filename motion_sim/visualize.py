r"""Pictures of sampled rollouts: a Fig.-5-style figure and an animation of one joint rollout.

    python -m motion_sim.visualize --scenario=motion_sim/data/sample/motion_data_one_scenario.tfrecord \
        --saved_model=runs/demo/export --output_dir=/tmp/pictures
    python -m motion_sim.visualize --scenes='runs/demo/data/*/*.tfrecord.gz' \
        --rollouts=runs/x/submission.tar.gz --scenario_id=637f20cafde22ff8 --output_dir=/tmp/pics

The scene comes from a Scenario-proto TFRecord (`--scenario`) or a preprocessed scene shard
(`--scenes`), picked by `--scenario_id` (default: the first record). The rollouts come from a
sim-agent SavedModel (`--saved_model`, run with the submission's per-scenario seed, so the
picture shows the rollouts a submission with the same `--seed` holds) or a rollouts file
(`--rollouts`: submission shards, ScenarioRollouts binprotos or a .tar.gz of them).
Writes `<output_dir>/<scenario_id>.png` (log | rollouts, collisions and off-road marked) and
`<scenario_id>_rollout<k>.gif` / `.mp4` (one joint rollout at 10 Hz); prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import app, flags

from export import loader, saved_model_rollouts, scene_input
from motion_sim.data import pipeline, scenario_reader, scene_builder, tfrecord_io
from motion_sim.data.datatypes import ScenarioError, Scene
from motion_sim.metrics import rollouts_io
from motion_sim.viz import animation, figure, rollout_events, rollout_view

FLAGS = flags.FLAGS
OUTPUT_FORMATS = ("png", "gif", "mp4")


def define_flags() -> None:
    """Defined only when run as a program (importing this module defines no global flags)."""
    flags.DEFINE_string("scenario", None, "Glob of Scenario-proto TFRecords (the scene).")
    flags.DEFINE_string(
        "scenes", None, "Glob of preprocessed scene shards (instead of --scenario)."
    )
    flags.DEFINE_string("scenario_id", None, "Scenario to draw (default: the first record).")
    flags.DEFINE_string("saved_model", None, "Sim-agent SavedModel that samples the rollouts.")
    flags.DEFINE_string(
        "rollouts",
        None,
        "Rollout binprotos / submission shards / .tar.gz (instead of --saved_model).",
    )
    flags.DEFINE_integer("seed", 0, "Base seed for --saved_model (the submission's --seed).")
    flags.DEFINE_integer("rollout", 0, "Which joint rollout the animation shows.")
    flags.DEFINE_string("output_dir", None, "Where the pictures go.")
    flags.DEFINE_list("formats", list(OUTPUT_FORMATS), "Outputs to write: png, gif, mp4.")
    flags.DEFINE_integer("size_px", 480, "Animation frame size (multiple of 16).")


def load_scene(scenario: str | None, scenes: str | None, scenario_id: str | None) -> dict:
    """Unbatched Scene fields (numpy) of the wanted scenario from protos or scene shards.

    Raises:
      FileNotFoundError: nothing matches; ValueError: the scenario id is not there.
    """
    if scenario:
        for path in tfrecord_io.expand_pattern(scenario):
            for source, serialized in scenario_reader.iter_scenario_records(path):
                proto = scenario_reader.parse_scenario_bytes(serialized, source)
                if scenario_id is None or proto.scenario_id == scenario_id:
                    raw = scenario_reader.read_scenario_bytes(serialized, source)
                    return scene_builder.build_scene(raw)[0]._asdict()
        raise ValueError(f"{scenario}: no scenario {scenario_id!r}")
    for batch in pipeline.make_dataset(scenes, 1, shuffle=False, repeat=False):
        found = batch["scenario_id"][0].numpy().decode()
        if scenario_id is None or found == scenario_id:
            scene = {k: v[0].numpy() for k, v in batch.items()}
            scene["scenario_id"] = np.array(found, dtype=object)
            return scene
    raise ValueError(f"{scenes}: no scenario {scenario_id!r}")


def view_from_saved_model(scene: dict, saved_model: str, seed: int):
    """Samples the scene with a SavedModel (TF-only loader) and returns a `RolloutView`."""
    agent = loader.load_sim_agent(saved_model)
    scenario_id = str(scene["scenario_id"])
    inputs = scene_input.stack_scenes([scene_input.scene_to_inputs(_as_scene(scene))])
    out = agent.run(inputs, saved_model_rollouts.scenario_seed(seed, scenario_id))
    return rollout_view.view_from_world(scene, out["trajectories"][0], out["object_ids"][0])


def view_from_rollouts_file(scene: dict, pattern: str):
    scenario_id = str(scene["scenario_id"])
    for _, rollouts in rollouts_io.read_rollouts(pattern):
        if rollouts.scenario_id == scenario_id:
            return rollout_view.view_from_scenario_rollouts(scene, rollouts)
    raise ValueError(f"{pattern}: no rollouts of scenario {scenario_id}")


def _as_scene(scene: dict) -> Scene:
    return Scene(**scene)


def render(
    view, output_dir: str, formats=OUTPUT_FORMATS, rollout: int = 0, size_px: int = 480
) -> dict:
    """Writes the wanted pictures of `view`; returns {format: path} plus event counts."""
    events = rollout_events.find_events(view)
    written = {}
    if "png" in formats:
        fig = figure.render_figure(view, events)
        written["png"] = figure.save_figure(
            fig, os.path.join(output_dir, f"{view.scenario_id}.png")
        )
    movies = [f for f in formats if f in ("gif", "mp4")]
    if movies:
        frames = animation.render_frames(view, events, rollout, size_px)
        for fmt in movies:
            path = os.path.join(output_dir, f"{view.scenario_id}_rollout{rollout}.{fmt}")
            written[fmt] = animation.write_animation(frames, path)
    rows = view.rollout_mask
    written.update(
        scenario_id=view.scenario_id,
        agents=int(rows.sum()),
        rollouts=view.num_rollouts,
        collided_agent_rollouts=int(np.any(events.collided, -1)[:, rows].sum()),
        offroad_agent_rollouts=int(np.any(events.offroad, -1)[:, rows].sum()),
    )
    return written


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if bool(FLAGS.scenario) == bool(FLAGS.scenes):
        raise app.UsageError("give exactly one of --scenario / --scenes")
    if bool(FLAGS.saved_model) == bool(FLAGS.rollouts):
        raise app.UsageError("give exactly one of --saved_model / --rollouts")
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    unknown = sorted(set(FLAGS.formats) - set(OUTPUT_FORMATS))
    if unknown:
        raise app.UsageError(f"--formats: unknown {unknown} (choose from {OUTPUT_FORMATS})")
    try:
        scene = load_scene(FLAGS.scenario, FLAGS.scenes, FLAGS.scenario_id)
        view = (
            view_from_saved_model(scene, FLAGS.saved_model, FLAGS.seed)
            if FLAGS.saved_model
            else view_from_rollouts_file(scene, FLAGS.rollouts)
        )
        written = render(view, FLAGS.output_dir, FLAGS.formats, FLAGS.rollout, FLAGS.size_px)
    except (FileNotFoundError, ValueError, ScenarioError, loader.SimAgentLoadError) as e:
        print(f"motion_sim.visualize: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(written, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    define_flags()
    app.run(main)
