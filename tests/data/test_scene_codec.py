"""Scene <-> tf.Example: exact round trip (float64 frame included) and shape checks."""

import numpy as np
import pytest
import tensorflow as tf

from motion_sim.data.scene_builder import build_scene
from motion_sim.data.scene_codec import decode_scene, parse_scene, serialize_scene


def test_round_trip_is_exact(womd_lights_raw):
    scene, _ = build_scene(womd_lights_raw)
    dropped = np.array([11, 2**40], np.int64)
    decoded, decoded_dropped = decode_scene(serialize_scene(scene, dropped))
    for name in scene._fields:
        a, b = np.asarray(getattr(scene, name)), np.asarray(getattr(decoded, name))
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert decoded.frame_origin.dtype == np.float64
    assert decoded.frame_origin[0] == womd_lights_raw.xyz[womd_lights_raw.sdc_index, 10, 0]
    assert decoded_dropped.tolist() == [11, 2**40]


def test_parse_in_graph_has_static_shapes(womd_raw):
    scene, dropped = build_scene(womd_raw)
    ds = tf.data.Dataset.from_tensors(serialize_scene(scene, dropped)).map(parse_scene)
    assert ds.element_spec["agent_xy"].shape == (128, 91, 2)
    assert ds.element_spec["scenario_id"].dtype == tf.string
    element = next(iter(ds))
    assert element["scenario_id"].numpy().decode() == "ee519cf571686d19"


def test_wrong_shape_is_rejected(womd_raw):
    scene, dropped = build_scene(womd_raw)
    with pytest.raises(ValueError, match="agent_xy has shape"):
        serialize_scene(scene._replace(agent_xy=scene.agent_xy[:10]), dropped)
    # a record whose field has the wrong shape fails at parse time, not silently
    bad = serialize_scene(scene, dropped)
    example = tf.train.Example.FromString(bad)
    example.features.feature["map_type"].bytes_list.value[0] = tf.make_tensor_proto(
        np.zeros(3, np.int32)
    ).SerializeToString()
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError)):
        parse_scene(tf.constant(example.SerializeToString()))


def test_field_bytes_equal_serialize_tensor(example_raw):
    """Host-built TensorProto bytes are exactly what tf.io.serialize_tensor writes."""
    from motion_sim.data.datatypes import scene_spec
    from motion_sim.data.scene_codec import _tensor_proto_bytes

    scene, _ = build_scene(example_raw)
    for name, (_, dtype) in scene_spec().items():
        value = np.asarray(getattr(scene, name))
        expected = tf.io.serialize_tensor(
            tf.constant(value.item() if dtype is np.object_ else value)
        ).numpy()
        assert _tensor_proto_bytes(value, dtype) == expected, name


def test_history_only_flag_round_trips(womd_raw):
    from motion_sim.data.scene_codec import HISTORY_ONLY_KEY, parse_history_only

    scene, dropped = build_scene(womd_raw)
    assert not parse_history_only(tf.constant(serialize_scene(scene, dropped))).numpy()
    flagged = serialize_scene(scene, dropped, history_only=True)
    assert parse_history_only(tf.constant(flagged)).numpy()
    # shards written before the flag existed parse as full scenes
    example = tf.train.Example.FromString(flagged)
    del example.features.feature[HISTORY_ONLY_KEY]
    assert not parse_history_only(tf.constant(example.SerializeToString())).numpy()
