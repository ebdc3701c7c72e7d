"""Which shards of a submission (or scenes of an evaluation) one task of a multi-host job owns.

A job of N tasks (hosts, or processes on one host) splits the shard list round-robin: task t
owns shards k with k % N == t, so every task gets an equal share whatever the shard count, and
the split does not depend on how long each shard takes. The task index and count come from
flags (`--task_index`, `--num_tasks`) or, when those are not given, from the cluster in
TF_CONFIG (the same variable `launch/multi_worker.sh` writes for training), read with TF's
`TFConfigClusterResolver`.
"""

from __future__ import annotations

import dataclasses
import json
import os


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task of a split job.

    Attributes:
      index: this task, in [0, count).
      count: tasks in the job (1 = no split).
    """

    index: int = 0
    count: int = 1

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"task index {self.index} must be in [0, {self.count})")

    @property
    def is_split(self) -> bool:
        return self.count > 1

    def owns(self, k: int) -> bool:
        """Whether shard (or item) k is this task's."""
        return k % self.count == self.index

    def name(self) -> str:
        """Directory name of this task's outputs, e.g. task_00001-of-00004."""
        return f"task_{self.index:05d}-of-{self.count:05d}"


def task_from_flags_or_cluster(task_index: int | None, num_tasks: int | None) -> TaskSpec:
    """The flags when given, else TF_CONFIG's task (worker / chief tasks counted), else 0 of 1.

    Raises:
      ValueError: only one of the two flags is given, or they are out of range.
    """
    if (task_index is None) != (num_tasks is None):
        raise ValueError("give both --task_index and --num_tasks, or neither (TF_CONFIG)")
    if task_index is not None:
        return TaskSpec(int(task_index), int(num_tasks))
    if not os.environ.get("TF_CONFIG"):
        return TaskSpec()
    # Imported here: TensorFlow is only needed when the cluster is described by TF_CONFIG.
    import tensorflow as tf

    try:
        json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from e
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    cluster = resolver.cluster_spec().as_dict()
    # The chief (if any) comes first, then the workers: one consecutive index space.
    tasks = [("chief", i) for i in range(len(cluster.get("chief", [])))]
    tasks += [("worker", i) for i in range(len(cluster.get("worker", [])))]
    if not tasks:
        return TaskSpec()
    me = (resolver.task_type, int(resolver.task_id or 0))
    if me not in tasks:
        raise ValueError(f"TF_CONFIG task {me} is not a chief or worker of its cluster")
    return TaskSpec(tasks.index(me), len(tasks))
