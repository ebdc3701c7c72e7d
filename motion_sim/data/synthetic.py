"""Seeded synthetic scenarios for scale tests and benchmarks (no WOMD licence needed).

Each scenario is a long, gently curving two-way road (`lanes_per_direction` lanes each way, lane
lines, a double-yellow centre line, road edges) crossed by a two-lane street at a signalised
intersection with crosswalks and a stop sign. Vehicles and cyclists follow lane centres with an
Intelligent Driver Model (IDM) speed law behind their leader; cross-street vehicles queue at the
red light; pedestrians walk the sidewalks. Some agents enter late or leave early (validity gaps),
and vehicles that run off the end of the road become invalid. `num_agents` may exceed
MAX_AGENTS to exercise dropping.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from motion_sim.data.datatypes import (
    CURRENT_INDEX,
    NUM_STEPS,
    STEP_HZ,
    AgentType,
    MapType,
    RawScenario,
    TrafficLightState,
)
from motion_sim.data.frames import wrap_angle

_DT = 1.0 / STEP_HZ
_LANE_WIDTH = 3.6
# IDM parameters (Treiber et al. 2000), typical urban values.
_IDM_MAX_ACCEL, _IDM_COMFORT_DECEL, _IDM_MIN_GAP, _IDM_HEADWAY = 1.5, 2.0, 2.0, 1.5
_SIZES = {
    AgentType.VEHICLE: (4.6, 1.9, 1.6),
    AgentType.CYCLIST: (1.8, 0.6, 1.7),
    AgentType.PEDESTRIAN: (0.6, 0.6, 1.75),
}


def _arc(points: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=-1))])


def _along(points: np.ndarray, arc: np.ndarray, s: np.ndarray):
    """Position [..., 2] and tangent heading [...] at arc lengths s on a polyline."""
    x = np.interp(s, arc, points[:, 0])
    y = np.interp(s, arc, points[:, 1])
    tangent = np.diff(points, axis=0)
    seg = np.clip(np.searchsorted(arc, s, side="right") - 1, 0, len(tangent) - 1)
    return np.stack([x, y], axis=-1), np.arctan2(tangent[seg, 1], tangent[seg, 0])


class SyntheticScenarioGenerator:
    """Generates `RawScenario`s; `generate(i)` is a pure function of (seed, i).

    Args:
      num_agents: tracks per scenario (vehicles ~75%, pedestrians ~15%, cyclists ~10%).
      lanes_per_direction: lanes each way on the main road.
      road_length_m: length of the main road (the map spans about this much).
      seed: base seed.
    """

    def __init__(
        self,
        num_agents: int = 160,
        lanes_per_direction: int = 3,
        road_length_m: float = 800.0,
        seed: int = 0,
    ):
        if num_agents < 1:
            raise ValueError("num_agents must be >= 1")
        self.num_agents = num_agents
        self.lanes_per_direction = lanes_per_direction
        self.road_length_m = road_length_m
        self.seed = seed

    # ------------------------------------------------------------------ map
    def _main_centreline(self, rng) -> np.ndarray:
        half = self.road_length_m / 2
        x = np.arange(-half, half + 0.5, 1.0)  # 1 m spacing, like WOMD lane samples (~0.5 m)
        amplitude, wavelength = rng.uniform(5, 25), rng.uniform(300, 600)
        y = amplitude * np.sin(2 * np.pi * x / wavelength)
        return np.stack([x, y], axis=-1)

    @staticmethod
    def _offset(centre: np.ndarray, offset: float) -> np.ndarray:
        tangent = np.gradient(centre, axis=0)
        tangent /= np.linalg.norm(tangent, axis=-1, keepdims=True)
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=-1)  # left of travel
        return centre + offset * normal

    def _build_map(self, rng):
        n = self.lanes_per_direction
        centre = self._main_centreline(rng)
        lanes, polylines = [], []  # lanes: (points [P, 2], direction), travel along the points
        for direction in (+1, -1):
            for k in range(n):
                pts = self._offset(centre, -direction * (k + 0.5) * _LANE_WIDTH)
                lanes.append(pts if direction > 0 else pts[::-1])
                polylines.append((MapType.LANE_SURFACE_STREET, lanes[-1]))
            for k in range(1, n):
                polylines.append(
                    (MapType.ROAD_LINE_BROKEN, self._offset(centre, -direction * k * _LANE_WIDTH))
                )
            polylines.append(
                (MapType.ROAD_EDGE_BOUNDARY, self._offset(centre, -direction * n * _LANE_WIDTH))
            )
        polylines.append((MapType.ROAD_LINE_DOUBLE, centre))
        # Cross street at x = 0, one lane each way, queueing towards the main road.
        cross_y = np.arange(-150.0, 150.5, 1.0)
        cross_lanes = []
        for direction in (+1, -1):
            x = np.full_like(cross_y, -direction * _LANE_WIDTH / 2)
            pts = np.stack([x, cross_y if direction > 0 else cross_y[::-1]], axis=-1)
            cross_lanes.append(pts)
            polylines.append((MapType.LANE_SURFACE_STREET, pts))
        road_half = n * _LANE_WIDTH
        for side in (-1, 1):  # crosswalk polygons on both sides of the main road
            x0 = side * (_LANE_WIDTH + 2.0)
            ring = np.array(
                [
                    [x0 - 2, -road_half],
                    [x0 + 2, -road_half],
                    [x0 + 2, road_half],
                    [x0 - 2, road_half],
                    [x0 - 2, -road_half],
                ]
            )
            polylines.append((MapType.CROSSWALK, ring))
        polylines.append((MapType.STOP_SIGN, np.array([[_LANE_WIDTH + 1.0, -road_half - 3.0]])))
        polylines.append(
            (
                MapType.SPEED_BUMP,
                np.array(
                    [
                        [100, -road_half],
                        [101, -road_half],
                        [101, road_half],
                        [100, road_half],
                        [100, -road_half],
                    ],
                    float,
                ),
            )
        )
        polylines = [(t, np.concatenate([p, np.zeros((len(p), 1))], axis=-1)) for t, p in polylines]
        return lanes, cross_lanes, polylines, centre, road_half

    # --------------------------------------------------------------- agents
    def _idm_lane(self, rng, lane: np.ndarray, count: int, sdc_here: bool):
        """Simulates `count` vehicles on one lane; returns xy [c, S, 2], heading, valid, s0."""
        arc = _arc(lane)
        length = arc[-1]
        # Spread initial positions with at least 12 m between vehicles.
        gaps = rng.uniform(12.0, 12.0 + 2 * length / max(count, 1), size=count)
        s = np.cumsum(gaps)
        s = s / s[-1] * (length * 0.95) if s[-1] > length * 0.95 else s
        if sdc_here:  # put a vehicle (the SDC) right at the middle of the road
            s[np.argmin(np.abs(s - length / 2))] = length / 2
            s = np.sort(s)
        desired = rng.uniform(8.0, 18.0, size=count)
        v = desired * rng.uniform(0.6, 1.0, size=count)
        positions = np.zeros((count, NUM_STEPS))
        for t in range(NUM_STEPS):
            positions[:, t] = s
            leader_gap = np.r_[s[1:] - s[:-1] - 4.6, np.inf]
            dv = np.r_[v[:-1] - v[1:], 0.0]
            s_star = (
                _IDM_MIN_GAP
                + v * _IDM_HEADWAY
                + v * dv / (2 * np.sqrt(_IDM_MAX_ACCEL * _IDM_COMFORT_DECEL))
            )
            accel = _IDM_MAX_ACCEL * (
                1 - (v / desired) ** 4 - (np.maximum(s_star, 0) / np.maximum(leader_gap, 0.1)) ** 2
            )
            v = np.maximum(v + accel * _DT, 0.0)
            s = s + v * _DT
        xy, heading = _along(lane, arc, positions)
        valid = positions <= length  # ran off the end of the road: gone
        return xy, heading, valid

    def _pedestrians(self, rng, count: int, centre: np.ndarray, road_half: float):
        arc = _arc(centre)
        s0 = rng.uniform(0.3, 0.7, size=count) * arc[-1]
        speed = rng.uniform(0.8, 1.6, size=count) * rng.choice([-1, 1], size=count)
        side = rng.choice([-1, 1], size=count) * (road_half + rng.uniform(1.5, 3.5, size=count))
        s = s0[:, None] + speed[:, None] * np.arange(NUM_STEPS) * _DT
        on_path, heading = _along(centre, arc, s)
        tangent_heading = heading + np.where(speed < 0, np.pi, 0.0)[:, None]
        normal = np.stack([-np.sin(heading), np.cos(heading)], axis=-1)
        wobble = 0.1 * np.sin(np.arange(NUM_STEPS) * _DT * rng.uniform(1, 3, (count, 1)))
        xy = on_path + (side[:, None] + wobble)[..., None] * normal
        return xy, tangent_heading, np.ones((count, NUM_STEPS), bool)

    def generate(self, index: int = 0) -> RawScenario:
        rng = np.random.default_rng([self.seed, index])
        lanes, cross_lanes, polylines, centre, road_half = self._build_map(rng)
        n = self.num_agents
        n_ped = int(round(0.15 * n)) if n > 4 else 0
        n_cyc = int(round(0.10 * n)) if n > 4 else 0
        n_cross = min(6, max(0, n - 1 - n_ped - n_cyc) // 10)
        n_veh = n - n_ped - n_cyc - n_cross
        xy_all, heading_all, valid_all, types = [], [], [], []
        # Vehicles over the main-road lanes; the SDC on lane 1 (or 0) of the forward direction.
        sdc_lane = min(1, self.lanes_per_direction - 1)
        per_lane = np.full(len(lanes), n_veh // len(lanes))
        per_lane[: n_veh % len(lanes)] += 1
        sdc_row = None
        for k, lane in enumerate(lanes):
            if per_lane[k] == 0:
                continue
            xy, heading, valid = self._idm_lane(rng, lane, int(per_lane[k]), k == sdc_lane)
            if k == sdc_lane:
                mid = np.argmin(np.abs(xy[:, CURRENT_INDEX, 0]))
                sdc_row = sum(len(a) for a in xy_all) + mid
            xy_all.append(xy)
            heading_all.append(heading)
            valid_all.append(valid)
            types += [AgentType.VEHICLE] * len(xy)
        if n_cyc:  # cyclists on the outermost lanes, slow
            outer = lanes[self.lanes_per_direction - 1]
            xy, heading, valid = self._idm_lane(rng, self._offset(outer, -1.2), n_cyc, False)
            xy_all.append(xy)
            heading_all.append(heading)
            valid_all.append(valid)
            types += [AgentType.CYCLIST] * n_cyc
        for j in range(n_cross):  # queued at the red light on the cross street
            lane = cross_lanes[j % 2]
            arc = _arc(lane)
            s = arc[-1] / 2 - road_half - 4.0 - 7.0 * (j // 2)
            pos, heading = _along(lane, arc, np.full(NUM_STEPS, s))
            xy_all.append(pos[None])
            heading_all.append(heading[None])
            valid_all.append(np.ones((1, NUM_STEPS), bool))
            types.append(AgentType.VEHICLE)
        if n_ped:
            xy, heading, valid = self._pedestrians(rng, n_ped, centre, road_half)
            xy_all.append(xy)
            heading_all.append(heading)
            valid_all.append(valid)
            types += [AgentType.PEDESTRIAN] * n_ped
        xy = np.concatenate(xy_all)
        heading = np.concatenate(heading_all)
        valid = np.concatenate(valid_all)
        types = np.array(types, np.int32)
        total = len(xy)
        # Appearing / disappearing agents (never the SDC): late entries miss the current step.
        churn = rng.random(total) < 0.1
        churn[sdc_row] = False
        for i in np.flatnonzero(churn):
            if rng.random() < 0.5:
                valid[i, : rng.integers(1, NUM_STEPS // 2)] = False
            else:
                valid[i, rng.integers(NUM_STEPS // 2, NUM_STEPS) :] = False
        velocity = np.gradient(xy, _DT, axis=1)
        z = np.zeros((total, NUM_STEPS, 1))
        size = np.array([_SIZES.get(AgentType(t), _SIZES[AgentType.VEHICLE]) for t in types])
        size = np.repeat(size[:, None, :], NUM_STEPS, axis=1)
        d = np.linalg.norm(xy[:, CURRENT_INDEX] - xy[sdc_row, CURRENT_INDEX], axis=-1)
        full = valid.all(axis=1)
        candidates = [i for i in np.argsort(d) if full[i] and i != sdc_row][:7]
        tl_lane_id, tl_state, tl_xyz, tl_valid = self._lights(cross_lanes, road_half)
        return RawScenario(
            scenario_id=f"synthetic-{self.seed}-{index}",
            source=f"synthetic:{self.seed}:{index}",
            track_id=np.arange(1000, 1000 + total, dtype=np.int64),
            track_type=types,
            xyz=np.concatenate([xy, z], axis=-1),
            velocity=velocity,
            heading=wrap_angle(heading),
            size=size,
            valid=valid,
            sdc_index=int(sdc_row),
            tracks_to_predict=np.array([sdc_row] + candidates, np.int32),
            map_polylines=polylines,
            tl_lane_id=tl_lane_id,
            tl_state=tl_state,
            tl_xyz=tl_xyz,
            tl_valid=tl_valid,
        )

    def write_tfrecord(self, path: str, num_scenarios: int, start: int = 0) -> None:
        """Writes scenarios start..start+num_scenarios-1 as WOMD Scenario protos (atomically)."""
        from motion_sim.data.scenario_writer import to_scenario_proto  # proto deps only here

        tmp = f"{path}.tmp-{os.getpid()}"
        with tf.io.TFRecordWriter(tmp) as writer:
            for index in range(start, start + num_scenarios):
                writer.write(to_scenario_proto(self.generate(index)).SerializeToString())
        tf.io.gfile.rename(tmp, path, overwrite=True)

    def _lights(self, cross_lanes, road_half):
        """Red for the cross street the whole time (its queue waits), one light per lane."""
        num = len(cross_lanes)
        xyz = np.zeros((NUM_STEPS, num, 3))
        for j, lane in enumerate(cross_lanes):
            arc = _arc(lane)
            stop, _ = _along(lane, arc, np.array(arc[-1] / 2 - road_half - 1.0))
            xyz[:, j, :2] = stop
        return (
            np.tile(np.arange(num, dtype=np.int64) + 9000, (NUM_STEPS, 1)),
            np.full((NUM_STEPS, num), int(TrafficLightState.STOP), np.int32),
            xyz,
            np.ones((NUM_STEPS, num), bool),
        )
