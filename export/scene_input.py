"""Scene inputs for a sim-agent SavedModel, built from a `scenario_pb2.Scenario` at export time.

There is one scene builder in the project, `motion_sim.data.scene_builder.build_scene`; this
module only adapts its output to the serving signature (a dict of numpy arrays per Scene field,
batched with `stack_scenes`). Agents valid at the current step that the builder had to drop
(beyond `MAX_AGENTS`) are simply absent from the scene; the rollout writer finds them by
comparing with the official sim-agent ids and gives them the constant-velocity fallback.
"""

from __future__ import annotations

import numpy as np

from motion_sim.data import datatypes


def scene_from_scenario(scenario, source: str = "") -> dict[str, np.ndarray]:
    """Scene field name -> numpy array (unbatched, `datatypes.scene_spec()` shapes/dtypes).

    Args:
      scenario: a `scenario_pb2.Scenario`.
      source: "<file>:<record>" named in every error about this scenario.

    Raises:
      datatypes.ScenarioError: the scenario cannot be turned into a Scene.
    """
    # Imported here so that export/ stays importable while the data readers are being written;
    # a missing builder is then a clear error at the first scenario, not at import.
    try:
        from motion_sim.data import scenario_reader, scene_builder
    except ImportError as e:
        raise ImportError(
            "export.scene_input needs motion_sim.data.scenario_reader and "
            f"motion_sim.data.scene_builder, which are not importable: {e}"
        ) from e
    raw = scenario_reader.read_scenario_proto(scenario, source or scenario.scenario_id)
    scene, _dropped_ids = scene_builder.build_scene(raw)
    return scene_to_inputs(scene)


def scene_to_inputs(scene: datatypes.Scene) -> dict[str, np.ndarray]:
    """A `Scene` -> dict of arrays with exactly the spec's dtypes (checked, not assumed)."""
    inputs = {}
    for name, (shape, dtype) in datatypes.scene_spec().items():
        value = np.asarray(getattr(scene, name))
        if dtype is np.object_:
            value = np.asarray(value.item() if value.shape == () else value, dtype=np.object_)
        elif value.shape != tuple(shape):
            raise ValueError(f"Scene field {name} has shape {value.shape}, expected {shape}")
        else:
            value = value.astype(dtype, copy=False)
        inputs[name] = value
    return inputs


def stack_scenes(scenes: list[dict]) -> dict[str, np.ndarray]:
    """Unbatched scene dicts -> one batch (leading axis B = len(scenes))."""
    if not scenes:
        raise ValueError("stack_scenes needs at least one scene")
    out = {}
    for name in scenes[0]:
        values = [s[name] for s in scenes]
        if values[0].dtype == np.object_:
            arr = np.empty(len(values), dtype=np.object_)
            arr[:] = [v.item() if isinstance(v, np.ndarray) else v for v in values]
            out[name] = arr
        else:
            out[name] = np.stack(values)
    return out
