"""The launch scripts: --help, --dry_run prints the exact commands a real run executes (checked
against fake gcloud / ssh that record their arguments), nothing runs unless named, shellcheck."""

from __future__ import annotations

import glob
import json
import os
import shlex
import stat
import subprocess
import sys

import pytest

from tests.fixtures import REPO

SCRIPTS = sorted(glob.glob(os.path.join(REPO, "launch", "*.sh")))
TPU = os.path.join(REPO, "launch", "tpu_vm.sh")
MULTI = os.path.join(REPO, "launch", "multi_worker.sh")
TRAIN = [
    "--root_dir=gs://bkt/runs/pre10m",
    "--gin_file=gin/pretrain_10m.gin",
    "--train_data=gs://bkt/scenes/train/*.tfrecord.gz",
]


def _fake_bin(tmp_path, *names):
    """A bin dir whose `names` append their argv (JSON) to calls.jsonl and succeed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.jsonl"
    for name in names:
        tool = bin_dir / name
        tool.write_text(
            f"#!{sys.executable}\nimport json, sys\n"
            f"open({str(log)!r}, 'a').write(json.dumps(sys.argv) + '\\n')\n"
        )
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return bin_dir, log


def _run(script, *args, tmp_path, fakes=("gcloud", "ssh")):
    bin_dir, log = _fake_bin(tmp_path, *fakes)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", TMPDIR=str(tmp_path))
    proc = subprocess.run(
        ["bash", script, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, calls


def _commands(stdout: str) -> list[list[str]]:
    return [shlex.split(line) for line in stdout.splitlines() if line and not line.startswith("#")]


def test_there_are_the_two_launchers():
    assert [os.path.basename(s) for s in SCRIPTS] == ["multi_worker.sh", "tpu_vm.sh"]


def test_shellcheck_clean():
    shellcheck = os.path.join(os.path.dirname(sys.executable), "shellcheck")
    proc = subprocess.run([shellcheck, *SCRIPTS], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=os.path.basename)
def test_help_and_no_action_run_nothing(script, tmp_path):
    proc, calls = _run(script, "--help", tmp_path=tmp_path)
    assert proc.returncode == 0 and "usage:" in proc.stdout and "--dry_run" in proc.stdout
    proc, calls = _run(script, tmp_path=tmp_path)
    assert proc.returncode == 2 and "error:" in proc.stderr
    assert calls == []


def test_tpu_pod_slice_dry_run_prints_every_step(tmp_path):
    proc, calls = _run(
        TPU,
        "--dry_run",
        "--name=ms-v4",
        "--zone=us-central2-b",
        "--accelerator_type=v4-32",
        *TRAIN,
        "--pretrained=gs://bkt/runs/bc",
        "--logs_dir=/tmp/logs",
        "create",
        "setup",
        "train",
        "tensorboard",
        "logs",
        "delete",
        "--",
        "--seed=3",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert calls == []  # a dry run executes nothing
    cmds = _commands(proc.stdout)
    where = ["--zone=us-central2-b"]
    assert cmds[0] == [
        "gcloud",
        "compute",
        "tpus",
        "tpu-vm",
        "create",
        "ms-v4",
        *where,
        "--accelerator-type=v4-32",
        "--version=tpu-vm-tf-2.13.0-pod",
    ]
    assert cmds[1][:3] == ["git", "-C", REPO] and cmds[1][-1] == "HEAD"
    assert cmds[2][4:6] == ["scp", cmds[1][-2]] and cmds[2][-1] == "--worker=all"
    setup = cmds[3]
    assert setup[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "ms-v4"]
    assert "--worker=all" in setup and "bash motion_sim/tools/ensure_env.sh" in setup[-1]
    train = cmds[4]
    assert "--worker=0" in train
    remote = shlex.split(train[-1].removeprefix("--command="))
    assert remote[:6] == [
        "cd",
        "motion_sim",
        "&&",
        "TPU_LOAD_LIBRARY=0",
        "nohup",
        ".venv/bin/python",
    ]
    assert remote[6:14] == [
        "-m",
        "motion_sim.train",
        "--tpu=ms-v4",
        "--root_dir=gs://bkt/runs/pre10m",
        "--gin_file=gin/pretrain_10m.gin",
        '--gin_bindings=train.train_data="gs://bkt/scenes/train/*.tfrecord.gz"',
        '--gin_bindings=PRETRAINED_CHECKPOINT="gs://bkt/runs/bc"',
        "--seed=3",
    ]
    assert "--logdir=gs://bkt/runs/pre10m" in cmds[5][-1]
    assert cmds[6][-4:] == ["--", "-N", "-L", "6006:localhost:6006"]  # the printed tunnel
    logs = [c for c in cmds if "scp" in c and "--recurse" in c]
    assert [c[-1] for c in logs] == [f"--worker={i}" for i in range(4)]  # v4-32 = 4 hosts
    assert cmds[-1] == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "ms-v4", *where, "--quiet"]


def test_tpu_single_host_trains_with_local_tpu(tmp_path):
    proc, _ = _run(
        TPU,
        "--dry_run",
        "--name=ms",
        "--zone=z",
        "--project=p",
        *TRAIN,
        "--spot",
        "create",
        "train",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    create, train = _commands(proc.stdout)
    assert "--version=tpu-vm-tf-2.13.0" in create and "--spot" in create
    assert "--project=p" in create and "--accelerator-type=v4-8" in create
    assert "--tpu=local" in train[-1] and "TPU_LOAD_LIBRARY" not in train[-1]


def test_tpu_real_run_executes_exactly_the_dry_run_commands(tmp_path):
    args = [
        "--name=ms",
        "--zone=z",
        "--accelerator_type=v5litepod-16",
        *TRAIN,
        "--logs_dir=" + str(tmp_path / "logs"),
        "create",
        "setup",
        "train",
        "logs",
        "delete",
    ]
    dry, _ = _run(TPU, "--dry_run", *args, tmp_path=tmp_path)
    real, calls = _run(TPU, *args, tmp_path=tmp_path)
    assert real.returncode == 0, real.stderr
    printed = [c for c in _commands(dry.stdout) if c[0] == "gcloud"]
    assert [["gcloud", *c[1:]] for c in calls] == printed
    assert len([c for c in calls if "--recurse" in c]) == 4  # v5litepod-16: 4 hosts
    assert os.path.exists(tmp_path / "motion_sim-ms.tar.gz")  # setup's git archive ran
    assert os.path.isdir(tmp_path / "logs" / "worker_3")


def test_tpu_train_refuses_local_run_dirs(tmp_path):
    proc, calls = _run(
        TPU,
        "--name=ms",
        "--zone=z",
        "--root_dir=/tmp/run",
        "--gin_file=g.gin",
        "--train_data=x",
        "train",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 2 and "gs://" in proc.stderr and calls == []


def _tf_config(command: str) -> dict:
    word = next(w for w in shlex.split(command) if w.startswith("TF_CONFIG="))
    return json.loads(word.removeprefix("TF_CONFIG="))


def test_multi_worker_writes_each_workers_tf_config(tmp_path):
    hosts = "gpu-a:23456,gpu-b:23456,gpu-c:23456"
    for index in range(3):
        proc, _ = _run(
            MULTI,
            "--dry_run",
            f"--workers={hosts}",
            f"--task_index={index}",
            *TRAIN,
            tmp_path=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr
        config = _tf_config(proc.stdout)
        assert config == {
            "cluster": {"worker": hosts.split(",")},
            "task": {"type": "worker", "index": index},
        }
        words = shlex.split(proc.stdout)
        assert words[-5:] == [
            "-m",
            "motion_sim.train",
            "--root_dir=gs://bkt/runs/pre10m",
            "--gin_file=gin/pretrain_10m.gin",
            '--gin_bindings=train.train_data="gs://bkt/scenes/train/*.tfrecord.gz"',
        ]


def test_multi_worker_over_ssh_starts_every_worker(tmp_path):
    args = ["--workers=gpu-a:23456,gpu-b:23456", "--all_via_ssh", *TRAIN, "--", "--seed=7"]
    dry, _ = _run(MULTI, "--dry_run", *args, tmp_path=tmp_path)
    real, calls = _run(MULTI, *args, tmp_path=tmp_path)
    assert real.returncode == 0, real.stderr
    printed = _commands(dry.stdout)
    assert [["ssh", *c[1:]] for c in calls] == printed
    assert [c[1] for c in calls] == ["gpu-a", "gpu-b"]
    for i, call in enumerate(calls):
        assert _tf_config(call[2])["task"] == {"type": "worker", "index": i}
        assert call[2].split(" > ")[0].endswith("--seed=7")


@pytest.mark.parametrize("bad", [["--task_index=2"], ["--task_index=0", "--all_via_ssh"], []])
def test_multi_worker_bad_flags(bad, tmp_path):
    proc, calls = _run(MULTI, "--workers=a:1,b:2", *TRAIN, *bad, tmp_path=tmp_path)
    assert proc.returncode == 2 and "error:" in proc.stderr and calls == []
