"""Benchmark: participant-level preprocessing of ONE 1 mm T1w + PET session on 2 cores.

Runs, each in a fresh process (so peak RSS is per pipeline):

* ``ours``: :func:`bids_amyloid.preprocess.preprocess_session` with default settings (affine,
  N4 shrink 6 on an Otsu mask, skull strip + registration at 2 mm applied at 1 mm, PET rigid at
  2 mm, SUVR, float16 slice tensors, QC figures), timed per stage via the progress callback;
* ``reference``: the authors' recipe rebuilt with the same libraries: N4 at full resolution with
  ANTs defaults (shrink 4, 4 x 50 iterations, tol 1e-7) and an Otsu mask, skull strip (our
  registration method standing in for HD-BET, which is slower still on a CPU), RIGID registration
  of the brain to the 1 mm template at 1 mm with antspyx defaults, PET rigid to the T1w at full
  resolution, one resampling to the template, 40 sagittal slices per modality rendered as 8-bit
  PNG with per-slice min-max (the defect the app avoids; reproduced only for timing).

Input: a generated 1 mm cohort (``bids_amyloid.synth``), else the ch2 head (mricron-data) with a
synthetic PET. Usage: ``python benchmarks/preprocessing.py [--work DIR] [--threads 2] [--skip-reference]``.
Targets: ours <= 40 s, >= 3x faster than the reference (goal 4x), peak RSS <= 3 GiB.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _limit_cores(threads: int) -> None:
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) > threads:
            os.sched_setaffinity(0, set(cores[:threads]))
    except (AttributeError, OSError):
        pass


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


# ------------------------------------------------------------------------------------- inputs
def make_input(work: Path) -> dict:
    """A 1 mm T1w + PET session: generated cohort if possible, else ch2 + synthetic PET."""
    try:
        from bids_amyloid.synth import generate_cohort

        root = work / "bids"
        if not (root / "dataset_description.json").exists():
            generate_cohort(root, n_subjects=1, seed=0, resolution=1.0, contrasts=("T1w",), tracers=("PiB",))
        t1 = next(root.glob("sub-*/ses-*/anat/*_T1w.nii.gz"))
        pet = next((t1.parent.parent / "pet").glob("*_pet.nii.gz"))
        return {"bids": str(root), "t1w": str(t1), "pet": str(pet), "source": "synthetic cohort (1 mm)"}
    except ImportError:
        return _ch2_input(work)


def _ch2_input(work: Path) -> dict:
    import nibabel as nib
    import numpy as np
    from scipy import ndimage

    ch2 = Path("/usr/share/mricron/templates/ch2.nii.gz")
    if not ch2.exists():
        sys.exit("no cohort generator and no mricron-data: nothing to benchmark")
    root = work / "bids"
    anat, petdir = root / "sub-01/ses-01/anat", root / "sub-01/ses-01/pet"
    anat.mkdir(parents=True, exist_ok=True)
    petdir.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "ch2", "BIDSVersion": "1.10.0"}))
    img = nib.load(ch2)
    nib.save(img, anat / "sub-01_ses-01_T1w.nii.gz")
    data = np.asarray(img.dataobj, np.float32)
    pet = ndimage.gaussian_filter(np.where(data > 60, 1.0 + data / data.max(), 0.2), 3.0)[::2, ::2, ::2]
    affine = img.affine @ np.diag([2, 2, 2, 1.0])
    nib.save(nib.Nifti1Image((pet * 5000).astype(np.float32), affine), petdir / "sub-01_ses-01_trc-11CPIB_pet.nii.gz")
    return {"bids": str(root), "t1w": str(anat / "sub-01_ses-01_T1w.nii.gz"),
            "pet": str(petdir / "sub-01_ses-01_trc-11CPIB_pet.nii.gz"), "source": "ch2 head + synthetic PET"}


# ------------------------------------------------------------------------------------- workers
def run_ours(inp: dict, out: Path, threads: int) -> dict:
    from bids_amyloid.bids.records import PetScan, Session
    from bids_amyloid.bids.tracers import match_label
    from bids_amyloid.config import Config
    from bids_amyloid.preprocess import preprocess_session

    cfg = Config(bids_dir=Path(inp["bids"]), output_dir=out, analysis_level="participant", omp_nthreads=threads,
                 work_dir=out.parent / "work")
    t1, pet = Path(inp["t1w"]), Path(inp["pet"])
    ses = t1.parent.parent.name.removeprefix("ses-")
    session = Session(t1.parent.parent.parent.name.removeprefix("sub-"), ses, anat={"T1w": t1}, mri_session=ses,
                      pet=(PetScan(pet, match_label(pet.name.split("trc-")[1].split("_")[0]).family.key),))
    marks: list[tuple[str, float, float]] = []
    start, cpu0 = time.perf_counter(), _cpu()
    result = preprocess_session(session, cfg, progress=lambda key, stage, i, n: marks.append(
        (stage, time.perf_counter(), _cpu())))
    end, cpu1 = time.perf_counter(), _cpu()
    stages = {}
    bounds = marks + [("end", end, cpu1)]
    for (name, t, c), (_, t_next, c_next) in zip(bounds, bounds[1:], strict=False):
        stages[name] = {"wall": t_next - t, "cpu": c_next - c}
    return {"total": end - start, "cpu": cpu1 - cpu0, "stages": stages, "rss": _peak_rss_gib(),
            "computed": list(result.computed)}


def run_reference(inp: dict, out: Path, threads: int) -> dict:
    import ants
    import nibabel as nib
    import numpy as np
    from PIL import Image

    from bids_amyloid.config import PreprocessConfig
    from bids_amyloid.preprocess import register, skullstrip
    from bids_amyloid.preprocess.images import load_image
    from bids_amyloid.space import template
    from bids_amyloid.space.antsio import to_ants

    register.configure_ants(1234, threads)
    stages: dict[str, dict] = {}
    start, cpu0 = time.perf_counter(), _cpu()
    clock = [time.perf_counter(), _cpu()]

    def lap(name: str) -> None:
        t, c = time.perf_counter(), _cpu()
        stages[name] = {"wall": t - clock[0], "cpu": c - clock[1]}
        clock[:] = [t, c]

    head = to_ants(load_image(Path(inp["t1w"]), "T1w", 1.5).image)
    lap("load")
    n4 = ants.n4_bias_field_correction(head, mask=ants.threshold_image(head, "Otsu", 1))  # ANTs defaults
    lap("n4 (defaults, full res)")
    with tempfile.TemporaryDirectory() as tmp:
        reg = register.register_to_template(n4, PreprocessConfig(), Path(tmp))
        mask = skullstrip.native_brain_mask(n4, reg)
        brain = n4 * n4.new_image_like(mask.astype("float32"))
        lap("skull strip (stand-in for HD-BET)")
        fixed = to_ants(template.template_nifti(1))
        rigid = ants.registration(fixed, brain, type_of_transform="Rigid", outprefix=str(Path(tmp) / "r_"))
        t1_t = ants.apply_transforms(fixed, brain, rigid["fwdtransforms"])
        lap("rigid T1w->template at 1 mm")
        pet = to_ants(load_image(Path(inp["pet"]), "pet", 6.0).image)
        pet_reg = ants.registration(brain, pet, type_of_transform="Rigid", outprefix=str(Path(tmp) / "p_"))
        pet_t = ants.apply_transforms(fixed, pet, rigid["fwdtransforms"] + pet_reg["fwdtransforms"])
        lap("PET rigid + to template at 1 mm")
    out.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(t1_t.numpy(), template.template_nifti(1).affine), out / "t1w_template.nii.gz")
    nib.save(nib.Nifti1Image(pet_t.numpy(), template.template_nifti(1).affine), out / "pet_template.nii.gz")
    lap("write volumes")
    n_x = t1_t.shape[0]
    xs = np.linspace(0.4 * n_x, 0.6 * n_x, 40).astype(int)
    for name, vol in (("t1w", t1_t.numpy()), ("pet", pet_t.numpy())):
        for x in xs:
            s = vol[x]
            s = (255 * (s - s.min()) / (np.ptp(s) + 1e-8)).astype(np.uint8)  # per-slice min-max (a defect)
            Image.fromarray(np.rot90(s)).resize((224, 224)).save(out / f"{name}_slice_{x}.png")
    lap("40 slices x 2 as 8-bit PNG")
    return {"total": time.perf_counter() - start, "cpu": _cpu() - cpu0, "stages": stages, "rss": _peak_rss_gib()}


# ------------------------------------------------------------------------------------- driver
def _worker(args: argparse.Namespace) -> None:
    _limit_cores(args.threads)
    inp = json.loads(args.input)
    fn = run_ours if args.worker == "ours" else run_reference
    print("RESULT " + json.dumps(fn(inp, Path(args.out), args.threads)), flush=True)


def _spawn(kind: str, inp: dict, out: Path, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--input", json.dumps(inp), "--out", str(out),
           "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        sys.exit(f"{kind} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def _print(name: str, res: dict) -> None:
    print(f"\n{name}: total {res['total']:.1f} s wall, {res['cpu']:.1f} s CPU, peak RSS {res['rss']:.2f} GiB")
    print(f"  {'stage':38s} {'wall s':>8s} {'cpu s':>8s}")
    for stage, t in res["stages"].items():
        print(f"  {stage:38s} {t['wall']:8.2f} {t['cpu']:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--worker", choices=("ours", "reference"), help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(args)
    with tempfile.TemporaryDirectory(prefix="bench-preproc-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        inp = make_input(work)
        load = os.getloadavg()[0]
        print(f"input: {inp['source']}; threads {args.threads}; load average at start {load:.1f}")
        ours = _spawn("ours", inp, work / f"out-{time.time_ns()}", args.threads)
        _print("bids_amyloid (ours)", ours)
        ok = [f"ours {ours['total']:.1f} s (target <= 40 s): {'PASS' if ours['total'] <= 40 else 'FAIL'}",
              f"peak RSS {ours['rss']:.2f} GiB (target <= 3 GiB): {'PASS' if ours['rss'] <= 3 else 'FAIL'}"]
        if not args.skip_reference:
            ref = _spawn("reference", inp, work / "reference", args.threads)
            _print("reference recipe (authors', rebuilt)", ref)
            speed, cpu_speed = ref["total"] / ours["total"], ref["cpu"] / ours["cpu"]
            ok.append(f"speed-up {speed:.1f}x wall, {cpu_speed:.1f}x CPU (target >= 3x, goal 4x): "
                      f"{'PASS' if speed >= 3 else 'FAIL'}")
        print(f"\nload average at end {os.getloadavg()[0]:.1f}")
        print("\n".join(ok))


if __name__ == "__main__":
    main()
