"""Fast decoding of `SimulatedTrajectory` protos into numpy.

Converting repeated-float proto fields element by element costs ~20 us per field (0.5 s per
scenario of 32 rollouts), more than the compiled metrics themselves. The packed wire format
of the four coordinate fields is read directly with `np.frombuffer` instead; anything
unexpected (e.g. unpacked floats) falls back to the generic conversion.
"""
from __future__ import annotations

import numpy as np
from waymo_open_dataset.protos import sim_agents_submission_pb2

# SimulatedTrajectory field numbers of center_x, center_y, center_z, heading.
_COORD_FIELDS = {f.number: i for i, f in enumerate(
    sim_agents_submission_pb2.SimulatedTrajectory.DESCRIPTOR.fields_by_name[n]
    for n in ('center_x', 'center_y', 'center_z', 'heading'))}
COORD_NAMES = ('center_x', 'center_y', 'center_z', 'heading')


def _varint(data: bytes, pos: int) -> tuple[int, int]:
  result = shift = 0
  while True:
    byte = data[pos]
    pos += 1
    result |= (byte & 0x7F) << shift
    if byte < 0x80:
      return result, pos
    shift += 7


def _decode_packed(data: bytes) -> list | None:
  coords = [None] * 4
  pos, end = 0, len(data)
  while pos < end:
    tag, pos = _varint(data, pos)
    field, wire = tag >> 3, tag & 7
    if wire == 2:
      length, pos = _varint(data, pos)
      if field in _COORD_FIELDS:
        if length % 4:
          return None
        coords[_COORD_FIELDS[field]] = np.frombuffer(data, '<f4', length // 4, pos)
      pos += length
    elif wire == 0:
      _, pos = _varint(data, pos)
    elif wire == 5:
      if field in _COORD_FIELDS:
        return None  # unpacked floats: use the generic path
      pos += 4
    elif wire == 1:
      pos += 8
    else:
      return None
  return [c if c is not None else np.zeros(0, np.float32) for c in coords]


def coordinates(traj: sim_agents_submission_pb2.SimulatedTrajectory) -> list[np.ndarray]:
  """[center_x, center_y, center_z, heading] float32 arrays (each of its own length)."""
  coords = _decode_packed(traj.SerializeToString())
  if coords is None:
    coords = [np.asarray(getattr(traj, name), np.float32) for name in COORD_NAMES]
  return coords
