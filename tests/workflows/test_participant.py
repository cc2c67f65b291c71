"""Crash safety of the participant level: SIGKILL after given stages, re-run, same outputs, no
temporary or partial file left, the finished stages reused; and the memory guard of --mem."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_amyloid.bids.names import sidecar_of

pytestmark = pytest.mark.slow
SUBJECT = "002"


def _command(bids: Path, out: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "bids_amyloid", str(bids), str(out), "participant", "--participant-label",
            SUBJECT, "--sloppy", "--skip-bids-validation", "-w", str(out.parent / f"{out.name}-work"), *extra]


def _outputs(out: Path) -> list[Path]:
    """Derivative files (logs hold run times; lock files are empty markers)."""
    return sorted(p.relative_to(out) for p in out.rglob("*")
                  if p.is_file() and "logs" not in p.parts and not p.name.endswith(".lock"))


def _same_content(a: Path, b: Path) -> bool:
    if a.name.endswith(".nii.gz"):
        return np.array_equal(np.asanyarray(nib.load(a).dataobj), np.asanyarray(nib.load(b).dataobj))
    if a.suffix == ".npy":
        return np.array_equal(np.load(a), np.load(b))
    if a.suffix == ".json":
        strip = lambda d: {k: v for k, v in d.items() if k != "Settings"}  # Settings hold the output path
        return strip(json.loads(a.read_text())) == strip(json.loads(b.read_text()))
    if a.suffix in (".svg", ".html"):  # figures and reports embed matplotlib ids and run dates
        return b.stat().st_size > 0
    return a.read_bytes() == b.read_bytes()


@pytest.fixture(scope="module")
def reference(cohort_2mm, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "out"
    result = subprocess.run(_command(cohort_2mm.root, out), capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _stages_line(log_text: str) -> tuple[list[str], list[str]]:
    """(computed, reused) stage names from the run's 'done in' log line of the session."""
    line = next(ln for ln in log_text.splitlines() if "done in" in ln and "stages computed:" in ln)
    computed, reused = line.split("stages computed: ")[1].split("; reused: ")
    names = lambda text: [] if text.strip() == "none" else text.strip().split(", ")  # noqa: E731
    return names(computed), names(reused)


def _wait_for(pattern: str, root: Path, proc: subprocess.Popen, timeout: float = 600) -> bool:
    """Poll until a file matching ``pattern`` and its JSON sidecar are complete under ``root``
    (True) or the run ends (False). A stage is finished only with its sidecars: a kill between the
    image and its sidecar rightly redoes the stage, leaving nothing to reuse."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(not p.name.startswith(".tmp-") and sidecar_of(p).is_file() for p in root.rglob(pattern)):
            return True
        time.sleep(0.05)
    return False


# Kill points: after the first stage's output (N4 of the T1w) and after the template registration.
@pytest.mark.parametrize("after", ["*_desc-preproc_T1w.nii.gz", "*_from-T1w_to-*_xfm.*"])
def test_sigkill_then_rerun_matches_uninterrupted_run(cohort_2mm, reference, tmp_path, after):
    out = tmp_path / "out"
    proc = subprocess.Popen(_command(cohort_2mm.root, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    reached = _wait_for(after, out, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: worker processes die too
    proc.wait()
    assert reached and proc.returncode == -signal.SIGKILL, "the run was not killed mid-way"
    assert not list(out.glob(f"sub-{SUBJECT}*.html")), "killed after the end: nothing was interrupted"
    rerun = subprocess.run(_command(cohort_2mm.root, out), capture_output=True, text=True, timeout=1200)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    computed, reused = _stages_line(rerun.stderr)
    assert reused and computed, (computed, reused)  # resumed: the finished stages were not run again
    assert not list(out.rglob(".tmp-*")), "temporary files survived the re-run"
    assert _outputs(out) == _outputs(reference)
    different = [str(p) for p in _outputs(out) if not _same_content(out / p, reference / p)]
    assert not different, different


def test_rerun_skips_finished_sessions(cohort_2mm, reference):
    result = subprocess.run(_command(cohort_2mm.root, reference), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0
    computed, reused = _stages_line(result.stderr)
    assert computed == [] and {"n4-T1w", "register", "slices-T1w"} <= set(reused), (computed, reused)


def test_mem_below_one_process_refused(cohort_2mm, tmp_path):
    result = subprocess.run(_command(cohort_2mm.root, tmp_path / "out", "--mem", "1"), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 64 and "--mem 1 GiB" in result.stderr
    assert not list((tmp_path / "out").rglob("*.nii.gz"))


def test_peak_memory_stays_under_mem(tmp_path):
    """A 1 mm session (the real scale) under --mem 3 --nprocs 2: one process fits, peak RSS < 3 GiB."""
    from bids_amyloid.synth import generate_cohort

    truth = generate_cohort(tmp_path / "bids", n_subjects=2, seed=5, resolution=1.0, contrasts=("T1w",))
    # a fresh wrapper process, so RUSAGE_CHILDREN sees only this run (and its workers)
    wrapper = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
               "print('PEAK_KIB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)")
    cmd = [sys.executable, "-c", wrapper, sys.executable, "-m", "bids_amyloid", str(truth.root), str(tmp_path / "out"), "participant",
           "--participant-label", "001", "--sloppy",
           "--skip-bids-validation", "--mem", "3", "--nprocs", "2", "--session-label", "M000"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fits 1 process" in result.stderr
    peak_kib = int(result.stdout.split("PEAK_KIB")[1].split()[0])
    assert 0 < peak_kib < 3 * 1024 * 1024, f"peak RSS {peak_kib / 1024**2:.2f} GiB"
