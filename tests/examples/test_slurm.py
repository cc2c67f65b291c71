"""The Slurm recipes in examples/slurm/ run as written.

* Their command lines are captured with a stub program (``BIDS_AMYLOID_CMD`` / ``BIDS_AMYLOID_LAUNCH``
  replace the container) and parsed with the app's own parser (and torchrun's).
* The array script's per-task command runs for real, two tasks in a row into ONE output folder,
  on a tiny synthetic cohort (--sloppy, tiny random backbone).

These are fast checks of the scripts' command lines. Submitting them to a real Slurm cluster with
the real container (sbatch, scancel, sacct, srun + torchrun) is .ci/hpc_smoke.sh's job.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bids_amyloid.cli import build_parser, config_from_args

REPO = Path(__file__).resolve().parents[2]
SLURM = REPO / "examples" / "slurm"
SYNTH_RESOLUTION = os.environ.get("BIDS_AMYLOID_TEST_SYNTH_RESOLUTION", "2")  # voxel-size scale of the cohort

RECORDER = """#!{python}
import json, os, sys
with open(os.environ["RECORD"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
"""


def sbatch_directives(script: Path) -> dict[str, str]:
    out = {}
    for line in script.read_text().splitlines():
        m = re.match(r"#SBATCH\s+--([\w-]+)(?:=(\S+))?", line)
        if m:
            out[m.group(1)] = m.group(2) or ""
    return out


@pytest.fixture
def recorder(tmp_path) -> tuple[Path, Path]:
    stub = tmp_path / "record-argv"
    stub.write_text(RECORDER.format(python=sys.executable))
    stub.chmod(0o755)
    return stub, tmp_path / "argv.jsonl"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "BIDS_AMYLOID_"))}
    env.update(extra)
    return env


def _run(script: Path, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=timeout)


def _config(argv: list[str]):
    """The Config a command line gives (what the app would run with)."""
    return config_from_args(build_parser().parse_args(argv))


def _bids(root: Path, subjects: list[str]) -> Path:
    root.mkdir(parents=True)
    (root / "participants.tsv").write_text("participant_id\tage\n" + "".join(f"{s}\t70\n" for s in subjects))
    return root


@pytest.mark.parametrize("name", ["participant_array.sbatch", "group_gpu.sbatch", "group_multigpu_torchrun.sbatch"])
def test_sbatch_directives(name):
    d = sbatch_directives(SLURM / name)
    assert {"job-name", "time", "mem", "cpus-per-task", "output"} <= set(d)
    if name == "participant_array.sbatch":
        assert re.fullmatch(r"\d+-\d+(%\d+)?", d["array"])
    else:
        assert d["gres"].startswith("gpu:")


def test_array_task_command_lines(tmp_path, recorder):
    """Task N takes line N+1 of participants.tsv; past the end a task is a no-op."""
    stub, record = recorder
    bids = _bids(tmp_path / "bids", ["sub-001", "sub-002"])
    out = tmp_path / "out"
    for task in ("1", "2", "3"):
        res = _run(SLURM / "participant_array.sbatch",
                   _env(SLURM_ARRAY_TASK_ID=task, SLURM_CPUS_PER_TASK="2", BIDS_DIR=str(bids), OUT_DIR=str(out),
                        BIDS_AMYLOID_CMD=str(stub), RECORD=str(record)))
        assert res.returncode == 0, res.stderr
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(calls) == 2  # task 3 has no subject
    for subject, argv in zip(("sub-001", "sub-002"), calls):
        args = _config(argv)
        assert args.analysis_level == "participant"
        assert args.participant_labels == [subject.removeprefix("sub-")]
        assert args.bids_dir == bids and args.output_dir == out
        assert args.work_dir == Path(f"{out}-work") / subject  # one scratch folder per task
        assert args.omp_nthreads == 2 and args.skip_bids_validation


def test_array_task_container_command(tmp_path, recorder):
    """Without BIDS_AMYLOID_CMD the task runs the SIF with apptainer, binding paths 1:1."""
    stub, record = recorder
    bids = _bids(tmp_path / "bids", ["sub-001"])
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "apptainer").symlink_to(stub)
    res = _run(SLURM / "participant_array.sbatch",
               _env(SLURM_ARRAY_TASK_ID="1", BIDS_DIR=str(bids), OUT_DIR=str(tmp_path / "out"), SIF="x.sif",
                    RECORD=str(record), PATH=f"{bindir}:{os.environ['PATH']}"))
    assert res.returncode == 0, res.stderr
    argv = json.loads(record.read_text())
    assert argv[:3] == ["run", "--cleanenv", "--containall"]
    assert f"{bids}:{bids}:ro" in argv
    app_args = argv[argv.index("x.sif") + 1:]
    assert _config(app_args).participant_labels == ["001"]


@pytest.mark.parametrize("name", ["group_gpu.sbatch", "group_multigpu_torchrun.sbatch"])
def test_group_command_lines(tmp_path, recorder, name):
    stub, record = recorder
    weights = tmp_path / "weights"
    env = _env(BIDS_DIR=str(tmp_path / "bids"), OUT_DIR=str(tmp_path / "out"), WEIGHTS=str(weights),
               SLURM_CPUS_PER_TASK="8", RECORD=str(record), NPROC="2")
    if name == "group_gpu.sbatch":
        env["BIDS_AMYLOID_CMD"] = str(stub)
    else:
        env["BIDS_AMYLOID_LAUNCH"] = str(stub)
    res = _run(SLURM / name, env)
    assert res.returncode == 0, res.stderr
    argv = json.loads(record.read_text())
    if name == "group_multigpu_torchrun.sbatch":
        assert argv[0] == "torchrun"
        from torch.distributed.run import get_args_parser

        launcher = get_args_parser().parse_args(argv[1:])
        assert launcher.module and launcher.training_script == "bids_amyloid"
        assert str(launcher.nproc_per_node) == "2" and launcher.standalone
        argv = launcher.training_script_args
    args = _config(argv)
    assert args.analysis_level == "group"
    assert args.device == "cuda" and args.model.backbone_weights == weights
    if name == "group_multigpu_torchrun.sbatch":
        assert args.omp_nthreads == 4  # 8 CPUs / 2 processes


@pytest.mark.slow
def test_array_runs_two_tasks_for_real(tmp_path):
    """Two array tasks in a row, the real CLI (local install), one shared output folder."""
    bids = tmp_path / "bids"
    synth = subprocess.run([str(Path(sys.executable).parent / "bids_amyloid-synth"), str(bids), "--n-subjects", "2",
                            "--resolution", SYNTH_RESOLUTION, "--seed", "0", "--contrasts", "T1w", "--tracers", "PiB"],
                           capture_output=True, text=True, timeout=300)
    assert synth.returncode == 0, synth.stderr
    weights = tmp_path / "weights" / "tiny"
    from bids_amyloid.cli import main

    assert main(["fetch-weights", "--tiny", str(weights)]) == 0
    out = tmp_path / "out"
    subjects = [line.split("\t")[0] for line in (bids / "participants.tsv").read_text().splitlines()[1:]]
    for task in ("1", "2"):
        res = _run(SLURM / "participant_array.sbatch",
                   _env(SLURM_ARRAY_TASK_ID=task, SLURM_CPUS_PER_TASK="1", BIDS_DIR=str(bids), OUT_DIR=str(out),
                        BIDS_AMYLOID_CMD=shlex.join([sys.executable, "-m", "bids_amyloid"]),
                        BIDS_AMYLOID_EXTRA_ARGS=f"--sloppy --backbone-weights {weights}", MPLBACKEND="Agg"),
                   timeout=900)
        assert res.returncode == 0, res.stdout + res.stderr
    assert (out / "dataset_description.json").is_file()
    assert (out / ".bidsignore").is_file()
    for subject in subjects:
        assert any((out / subject).rglob("*.nii.gz")), f"no derivatives for {subject}"
    assert not list(out.rglob(".tmp-*")), "half-written files left behind"


def test_torchrun_script_launches_the_cli_on_cpu(tmp_path):
    """The multi-GPU script, run locally (BIDS_AMYLOID_LAUNCH=''), starts 2 CPU worker processes of
    the real CLI under torchrun; a missing BIDS_DIR makes them exit 64, which torchrun reports."""
    bindir = str(Path(sys.executable).parent)
    res = _run(SLURM / "group_multigpu_torchrun.sbatch",
               _env(BIDS_DIR=str(tmp_path / "missing"), OUT_DIR=str(tmp_path / "out"), BIDS_AMYLOID_LAUNCH="",
                    NPROC="2", DEVICE="cpu", SLURM_CPUS_PER_TASK="2", PATH=f"{bindir}:{os.environ['PATH']}"),
               timeout=120)
    output = res.stdout + res.stderr
    assert res.returncode != 0
    assert f"BIDS_DIR {tmp_path / 'missing'} does not exist" in output  # the app's own error, from a worker
    assert "exitcode  : 64" in output  # torchrun's summary: the workers' exit code
