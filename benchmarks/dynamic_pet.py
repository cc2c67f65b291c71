"""Benchmark: the cost of a raw 4-D dynamic PET, and participant level on one session of each layout.

1. ``frames``: a 33-frame 0-70 min PiB at 2 mm (``bids_amyloid-synth --layout oasis3``, resolution 1)
   turned into its static 50-70 min image (:func:`bids_amyloid.preprocess.frames.dynamic_to_static`:
   read the window frames, realign them, weight by duration), against reading the same session's 3-D
   static scan (:func:`load_image`), which is what a 3-D PET costs instead. Repeated; the minimum
   and median are printed. Target: extra <= 10 s (minimum) on 2 cores.
2. ``layouts``: ``bids_amyloid BIDS OUT participant`` (default settings, no --sloppy) on one PET
   session and its MRI of each layout at 1 mm, in a fresh process each, wall time and peak RSS.

Usage: ``python benchmarks/dynamic_pet.py [frames|layouts|all] [--repeats 5] [--threads 2] [--work DIR]``.
Run it on a quiet machine (it prints the load average before and after).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAYOUTS = ("default", "oasis3", "clinica-adni", "openneuro")


def _limit(threads: int) -> None:
    for var in ("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def _cohort(work: Path, layout: str, n_subjects: int = 1) -> Path:
    from bids_amyloid.synth import generate_cohort

    root = work / f"bids-{layout}"
    if not (root / "dataset_description.json").exists():
        generate_cohort(root, n_subjects=n_subjects, seed=3, resolution=1.0, contrasts=("T1w",), layout=layout,
                        tracers=("PiB",) if layout in ("default", "oasis3") else None)
    return root


def bench_frames(work: Path, repeats: int, threads: int) -> None:
    import nibabel as nib

    from bids_amyloid.bids.layout import discover
    from bids_amyloid.config import Config
    from bids_amyloid.preprocess import register
    from bids_amyloid.preprocess.frames import dynamic_to_static
    from bids_amyloid.preprocess.images import load_image
    from bids_amyloid.synth import load_truth

    _limit(threads)
    register.configure_ants(1234, threads)
    root = _cohort(work, "oasis3")
    config = Config(bids_dir=root, output_dir=work / "unused", analysis_level="participant", skip_bids_validation=True)
    scan = next(p for s in discover(config).sessions for p in s.pet if p.volumes > 1)
    truth = load_truth(root)
    static = root / truth.images.loc[truth.images.suffix == "pet-static", "path"].iloc[0]
    img = nib.load(str(scan.path))
    print(f"dynamic PET: {scan.path.name}, {scan.volumes} frames, {img.shape[:3]} voxels of "
          f"{img.header.get_zooms()[0]:.2g} mm, window {scan.window_min} min")
    times = {"3-D static scan: load_image": [], "4-D: window frames, no realignment": [],
             "4-D: window frames, realigned (default)": []}
    for _ in range(repeats):
        t = time.perf_counter()
        load_image(static, "pet", 6.0)
        times["3-D static scan: load_image"].append(time.perf_counter() - t)
        for realign, name in ((False, "4-D: window frames, no realignment"),
                              (True, "4-D: window frames, realigned (default)")):
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                result = dynamic_to_static(scan, scan.window_min, max_voxel_mm=6.0, realign=realign, workdir=Path(tmp))
                times[name].append(time.perf_counter() - t)
    print(f"  frames used {result.meta['FramesUsed']}, max displacement {result.meta['MaxFrameDisplacementMM']} mm")
    print(f"  {'step':44s} {'min s':>7s} {'median s':>9s}")
    for name, values in times.items():
        print(f"  {name:44s} {min(values):7.2f} {statistics.median(values):9.2f}")
    extra = min(times["4-D: window frames, realigned (default)"]) - min(times["3-D static scan: load_image"])
    print(f"  extra cost of the dynamic PET (minimum): {extra:.2f} s (target <= 10 s): "
          f"{'PASS' if extra <= 10 else 'FAIL'}; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f} GiB")


def bench_layouts(work: Path, threads: int) -> None:
    print(f"\nparticipant level, one PET session + its MRI per layout, 1 mm, default settings, {threads} threads")
    print(f"  {'layout':14s} {'wall s':>7s} {'peak RSS GiB':>13s}  sessions")
    for layout in LAYOUTS:
        root = _cohort(work, layout)
        out = work / f"out-{layout}-{time.time_ns()}"
        cmd = [sys.executable, "-m", "bids_amyloid", str(root), str(out), "participant", "--skip-bids-validation",
               "-w", str(out) + "-work", "--omp-nthreads", str(threads), "--session-label",
               *_first_pet_sessions(root)]
        t = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t
        rss = int(proc.stderr.strip().splitlines()[-1]) / 1024 ** 2 if proc.stderr.strip() else float("nan")
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr[-500:]}"
        done = [ln.split("INFO")[-1].strip() for ln in proc.stderr.splitlines() if " done in " in ln]
        print(f"  {layout:14s} {wall:7.1f} {rss:13.2f}  {status}; {'; '.join(done)}")


def _first_pet_sessions(root: Path) -> list[str]:
    """The first PET session of the first subject and the MRI session it is paired with."""
    from bids_amyloid.bids.layout import discover
    from bids_amyloid.config import Config

    found = discover(Config(bids_dir=root, output_dir=root.parent / "unused", analysis_level="participant",
                            skip_bids_validation=True))
    first = next(s for s in found.sessions if s.pet)
    return sorted({first.session, first.mri_session} - {None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", choices=("frames", "layouts", "all"), default="all")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dynamic-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        print(f"load average at start {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores, {args.threads} threads")
        if args.what in ("frames", "all"):
            bench_frames(work, args.repeats, args.threads)
        if args.what in ("layouts", "all"):
            bench_layouts(work, args.threads)
        print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
