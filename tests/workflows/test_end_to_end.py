"""The whole app as users run it, once, shared by the checks below (it is the slow part).

participant level runs as 4 processes started at once on different subjects with one OUTPUT_DIR
and one work dir (a Slurm array), then group level, then MRI-only prediction with the bundle.
Every process runs with the input dataset made read-only (chmod; root ignores it, so its checksums
are compared too: the Docker smoke test covers a real non-root --read-only run), HOME unwritable,
and socket connections blocked.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SUBJECTS = ["001", "002", "003", "004", "005", "006"]
NO_NETWORK = '''
import socket
def _blocked(*args, **kwargs):
    raise OSError("network disabled by the bids_amyloid offline test")
socket.socket.connect = _blocked
socket.socket.connect_ex = _blocked
socket.create_connection = _blocked
socket.getaddrinfo = _blocked
'''


def _checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


class Run:
    def __init__(self, root: Path, bids: Path, weights: Path):
        self.root, self.bids, self.weights = root, bids, weights
        self.out, self.work = root / "out", root / "work"
        sitedir = root / "offline"
        sitedir.mkdir()
        (sitedir / "sitecustomize.py").write_text(NO_NETWORK)
        home = root / "home"
        home.mkdir(mode=0o555)
        self.env = {**os.environ, "PYTHONPATH": str(sitedir), "HOME": str(home), "HF_HUB_OFFLINE": "1",
                    "MPLCONFIGDIR": str(root / "mpl")}
        self.results: dict[str, subprocess.CompletedProcess] = {}

    def command(self, *args) -> list[str]:
        return [sys.executable, "-m", "bids_amyloid", str(self.bids), str(self.out), *map(str, args),
                              "--sloppy", "--skip-bids-validation", "-w", str(self.work),
                              "--backbone-weights", str(self.weights)]

    def run(self, name: str, *args) -> subprocess.CompletedProcess:
        result = subprocess.run(self.command(*args), capture_output=True, text=True, env=self.env, timeout=1800)
        self.results[name] = result
        return result


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_weights) -> Run:
    from bids_amyloid.synth import generate_cohort

    root = Path(tempfile.mkdtemp(prefix="bids-amyloid-e2e-"))
    os.chmod(root, 0o755)
    truth = generate_cohort(root / "bids", n_subjects=len(SUBJECTS), seed=1, resolution=2.0, contrasts=("T1w",))
    weights = Path(shutil.copytree(tiny_weights, root / "weights"))
    run = Run(root, truth.root, weights)
    for folder in (run.out, run.work, root / "mpl"):
        folder.mkdir(mode=0o777)
        os.chmod(folder, 0o777)
    run.before = _checksums(run.bids)
    subprocess.run(["chmod", "-R", "a-w", str(run.bids)], check=True)

    procs = [subprocess.Popen(run.command("participant", "--participant-label", sub), env=run.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for sub in SUBJECTS[:4]]
    for sub, proc in zip(SUBJECTS, procs):
        stdout, stderr = proc.communicate(timeout=1800)
        run.results[f"participant-{sub}"] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    run.run("participant-rest", "participant", "--participant-label", *SUBJECTS[4:], "--nprocs", "2")
    # 3-fold CV needs 3 subjects per class: split the (random) cohort between its 3rd and 4th subject
    maxima = sorted(truth.sessions.groupby("participant_id")["centiloid"].max().dropna(), reverse=True)
    threshold = (maxima[2] + maxima[3]) / 2
    run.run("group", "group", "--folds", "3", "--centiloid-threshold", f"{threshold:.3f}")
    run.run("predict", "participant", "--model", run.out)
    yield run
    subprocess.run(["chmod", "-R", "u+w", str(root)], check=False)
    shutil.rmtree(root, ignore_errors=True)


def _ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-4000:]


def test_concurrent_participant_jobs_all_succeed(app):
    for sub in SUBJECTS[:4]:
        _ok(app.results[f"participant-{sub}"])
    _ok(app.results["participant-rest"])
    description = json.loads((app.out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    ignore = (app.out / ".bidsignore").read_text().splitlines()
    assert len(ignore) == len(set(ignore)), "shared .bidsignore merged without duplicates"
    for sub in SUBJECTS:
        assert list(app.out.glob(f"sub-{sub}/ses-*/anat/*_space-MNI152NLin2009aSym_desc-preproc_T1w.nii.gz")), sub
    assert not list(app.out.rglob(".tmp-*")) and not list(app.work.rglob(".tmp-*"))


def test_input_untouched_and_offline(app):
    assert _checksums(app.bids) == app.before
    for result in app.results.values():
        assert "network disabled" not in result.stderr


def test_group_level_writes_bundle_and_metrics(app):
    _ok(app.results["group"])
    assert (app.out / "models" / "manifest.json").exists()
    assert list((app.out / "group").glob("*.tsv"))


def test_prediction_with_bundle(app):
    _ok(app.results["predict"])
    predictions = sorted(app.out.glob("sub-*/ses-*/anat/*_predictions.tsv"))
    assert predictions
    gathered = next((app.out / "group").glob("*_predictions.tsv"))
    assert len(gathered.read_text().splitlines()) > len(predictions)  # header + one row per session/contrast
    assert list(app.out.glob("sub-*/ses-*/anat/*_space-MNI152NLin2009aSym_desc-gradcam*_saliency.nii.gz"))
    assert list(app.out.glob("sub-*.html"))


def test_output_is_valid_bids(app):
    validator = shutil.which("bids-validator-deno")
    if validator is None:
        pytest.skip("bids-validator-deno not installed")
    result = subprocess.run([validator, str(app.out), "--format", "json"], capture_output=True, text=True)
    if result.returncode != 0:
        issues = json.loads(result.stdout)["issues"]["issues"]
        errors = [(i.get("code"), i.get("location")) for i in issues if i.get("severity") == "error"]
        pytest.fail(f"validator errors: {errors[:10]}")


def _first_fold_done(work: Path) -> bool:
    return any(p.parent.name == "fold-0" for p in work.rglob("result.pt"))


# Kill points: the first epoch checkpoint (fold 0 resumes mid-phase), and fold 0 finished (later
# folds start after a reused one, so their random draws must not depend on the earlier folds).
@pytest.mark.parametrize("reached", [lambda work: bool(list(work.rglob("phase*.pt"))), _first_fold_done],
                         ids=["first-checkpoint", "first-fold-done"])
def test_group_killed_then_resumed_matches(app, tmp_path, reached):
    """SIGKILL the group level mid-training, re-run with --resume: same out-of-fold predictions."""
    import signal
    import time

    _ok(app.results["group"])
    out = tmp_path / "out"
    out.mkdir()
    for sub in app.out.glob("sub-*"):  # the participant outputs (slice caches), not the models
        if sub.is_dir():
            (out / sub.name).symlink_to(sub, target_is_directory=True)
    shutil.copy(app.out / "dataset_description.json", out)
    args = [arg for arg in app.results["group"].args if arg not in ()]
    cmd = [str(out) if a == str(app.out) else str(tmp_path / "work") if a == str(app.work) else a for a in args]
    proc = subprocess.Popen(cmd, env=app.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    work, deadline = tmp_path / "work", time.monotonic() + 900
    while proc.poll() is None and time.monotonic() < deadline and not reached(work):
        time.sleep(0.05)  # until the kill point is on disk
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and reached(work), "not killed mid-training"
    assert not (out / "group" / "desc-oof_predictions.tsv").exists()
    resumed = subprocess.run(cmd + ["--resume"], env=app.env, capture_output=True, text=True, timeout=1800)
    _ok(resumed)
    said = ("resuming after epoch", "resumed from", "finished earlier, reusing")
    assert any(s in resumed.stderr for s in said), resumed.stderr[-2000:]
    assert not list(out.rglob(".tmp-*")) and not list((tmp_path / "work").rglob(".tmp-*"))
    reference = (app.out / "group" / "desc-oof_predictions.tsv").read_text()
    assert (out / "group" / "desc-oof_predictions.tsv").read_text() == reference


def test_example_summary_says_testing_only_first_and_ends_with_what_to_open(app, tmp_path):
    """The summary that ends scripts/example.sh, on this tiny run's outputs."""
    from bids_amyloid.report.summary import summarise

    timings = tmp_path / "timings.tsv"
    timings.write_text("participant level: preprocess MRI and PET\t12\ngroup level\t30\n")
    text = summarise(app.out, timings)
    lines = text.splitlines()
    assert lines[1].startswith("TESTING ONLY: these models use the random 'tiny' backbone")
    assert any("PET teacher (reads PET + MRI)" in line and "AUC" in line for line in lines)
    assert any("MRI-only student" in line and "no meaning" in line for line in lines)
    assert "total" in text and "42 s" in text
    opened = lines.index("Open next:")
    assert lines[opened + 1].split()[-1] == str(app.out / "group" / "group_report.html")
    assert lines[opened + 2].split()[-1].endswith(".html") and "participant report" in lines[opened + 2]
    assert lines[opened + 3].split()[-1] == str(app.out / "group" / "sub-all_desc-amyloid_predictions.tsv")
    assert "bids_amyloid fetch-weights WEIGHTS/biomedclip" in text and "without --sloppy" in lines[-2]
