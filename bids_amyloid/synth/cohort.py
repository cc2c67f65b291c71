"""generate_cohort: output folder checks, per-subject jobs (optionally in processes), BIDS tables,
ground truth in sourcedata/synth/ (ignored by the BIDS validator by rule)."""
from __future__ import annotations

import json
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bids_amyloid import __version__
from bids_amyloid.errors import OutputError, UsageError
from bids_amyloid.synth import anatomy, bidsfiles, labels, layouts, mri, pet, subject, truth
from bids_amyloid.synth.sites import MODEL, Site, assign_sites, check_site_args, site_profiles

DEFAULT_CONTRASTS = ("T1w", "T2w", "FLAIR", "T2starw")
DEFAULT_TRACERS = ("PiB", "AV45")  # of the default layout; layouts.DEFAULT_TRACERS per layout
TRUTH_DIR = Path("sourcedata", "synth")
TRUTH_COLUMNS = {
    "mri_session": "MRI session whose anatomy/pose the PET is matched to (itself unless PET-only)",
    "has_mri": "the session has anat/ images",
    "tracer": "amyloid PET tracer (PiB, AV45, FBB) or n/a (no amyloid PET)",
    "latent_load": "amyloid load L in (0, 1)",
    "centiloid": "dataset Centiloid (sessions.tsv shows it for PET sessions only); label = > 20.6",
    "pet_centiloid": "Centiloid the PET image actually encodes (centiloid + PET noise)",
    "suvr_target": "composite cortical SUVR put into the PET image (tracer's inverse transform)",
    "global_atrophy": "g: age-driven atrophy index", "regional_signal": "y_r = effect_mri * L + n_r",
    "ventricle_signal": "y_v = effect_mri * L + n_v",
    "thinning_global": "fraction of GM turned into CSF everywhere",
    "thinning_regional": "extra GM fraction lost in the medial parietal ROI (central sagittal band)",
    "ventricle_mm": "ventricle expansion (mm)", "head_scale": "isotropic head size factor",
    "orientation": "axis codes of the session's first T1w file",
    "days": "days since the first visit (OASIS-3 session labels; months * 30.4375 otherwise)",
    "other_pet": "non-amyloid PET of the session (AV1451 tau, FDG) or n/a",
    "site": "acquisition site S1, S2, ... (scanner profile in truth.json \"sites\"; one per subject)",
}
IMAGE_COLUMNS = {  # images.tsv columns of PET rows beyond the geometry
    "suffix": "T1w..., mask, pet, pet-static (sourcedata companion of a dynamic PET), pet-invalid",
    "tracer_family": "amyloid, tau or fdg", "amyloid": "the tracer is an amyloid tracer",
    "dynamic": "4-D file", "n_frames": "frames in the file",
    "frame_start": "frame starts (s after injection)", "frame_duration": "frame durations (s)",
    "suvr_window": "the tracer's static SUVR window (s after injection)",
    "covers_suvr_window": "the frames span the whole SUVR window",
    "static_path": "static late-window companion of a dynamic PET (same pose, no motion)",
    "motion_path": ("per-frame rigid head motion of a dynamic PET, relative to template_to_scanner "
                    "(the pose at the SUVR window middle, else at the scan start)"),
    "sidecar_style": "standard, draft (pre-standard OASIS-3), two-frames (DLBS) or none",
    "sidecar_defects": "real-world sidecar defects written (petmeta.DEFECTS)",
}


@dataclass
class CohortTruth:
    """Where the cohort is and what is true about it (also re-readable with load_truth)."""

    root: Path
    seed: int
    parameters: dict[str, Any]
    anatomy: dict[str, str]
    oracle_auc: dict[str, float]
    sessions: pd.DataFrame  # truth.tsv: one row per (subject, session)
    images: pd.DataFrame  # images.tsv: one row per written image (MRI, PET, true brain mask)
    truth_tsv: Path = field(init=False)
    truth_json: Path = field(init=False)
    images_tsv: Path = field(init=False)

    def __post_init__(self) -> None:
        self.truth_tsv = self.root / TRUTH_DIR / "truth.tsv"
        self.truth_json = self.root / TRUTH_DIR / "truth.json"
        self.images_tsv = self.root / TRUTH_DIR / "images.tsv"

    @property
    def pet_sessions(self) -> pd.DataFrame:
        """Sessions with an amyloid PET (labelled sessions)."""
        return self.sessions[self.sessions["tracer"] != "n/a"]

    def paths(self, suffix: str) -> list[Path]:
        """Absolute paths of all images with this suffix ('T1w', ..., 'pet', 'mask')."""
        return [self.root / p for p in self.images.loc[self.images["suffix"] == suffix, "path"]]


def _check_args(n_subjects: int, contrasts: tuple[str, ...], tracers: tuple[str, ...],
                resolution: float, effect_mri: float, effect_pet: float, n_jobs: int,
                layout: str = "default") -> None:
    if layout not in layouts.LAYOUTS:
        raise UsageError(f"--layout must be one of {list(layouts.LAYOUTS)}, got {layout!r}")
    if n_subjects < 1:
        raise UsageError("--n-subjects must be at least 1")
    bad = [c for c in contrasts if c not in mri.CONTRASTS]
    if bad or not contrasts or "T1w" not in contrasts:
        raise UsageError(f"contrasts must include T1w and come from {list(mri.CONTRASTS)}; "
                         f"got {list(contrasts)}")
    if not tracers or any(t not in pet.TRACERS for t in tracers):
        raise UsageError(f"tracers must come from {list(pet.TRACERS)}; got {list(tracers)}")
    if not 0.5 <= resolution <= 4.0:
        raise UsageError(f"--resolution must be within 0.5-4 mm, got {resolution}")
    if effect_mri < 0 or effect_pet <= 0:
        raise UsageError("--effect-mri must be >= 0 and --effect-pet > 0")
    if n_jobs < 1:
        raise UsageError("--n-jobs must be at least 1")


def _prepare_output(root: Path, overwrite: bool) -> None:
    """Refuse a non-empty folder; --overwrite only ever deletes an earlier output of this tool."""
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a directory")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise UsageError(f"{root} is not empty; choose an empty folder or pass --overwrite")
        desc = root / "dataset_description.json"
        try:
            made_here = json.loads(desc.read_text())["GeneratedBy"][0]["Name"] == bidsfiles.GENERATOR
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            made_here = False
        if not made_here:
            raise UsageError(f"refusing to overwrite {root}: it is not an output of {bidsfiles.GENERATOR}")
        for child in root.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to {root}: {exc}") from exc


def _run_job(job: subject.Job) -> dict[str, list[dict[str, Any]]]:
    return subject.run(job, anatomy.load_source(job.template_mm, job.anatomy))


def generate_cohort(out_dir: str | Path, *, n_subjects: int = 6, seed: int = 0,
                    contrasts: tuple[str, ...] | list[str] = DEFAULT_CONTRASTS,
                    resolution: float = 1.0,
                    tracers: tuple[str, ...] | list[str] | None = None,
                    effect_mri: float = 1.0, effect_pet: float = 1.0, anatomy_source: str = "auto",
                    n_jobs: int = 1, overwrite: bool = False, layout: str = "default",
                    sites: int = 1, site_effect: float = 0.0,
                    site_prevalence_shift: float = 0.0) -> CohortTruth:
    """Write a BIDS dataset of n_subjects synthetic participants and return its ground truth.

    resolution scales every voxel size (1 = T1w at 1 mm); resolution >= 1.5 also uses the 2 mm
    template, which makes tiny test cohorts fast. anatomy_source: 'auto', 'ch2' or 'nilearn'.
    layout: 'default' (valid current BIDS) or the on-disk style of a real dataset ('oasis3',
    'clinica-adni', 'openneuro'; see layouts.py); tracers default to the layout's own
    (default and oasis3: PiB, AV45; clinica-adni: AV45, FBB; openneuro: AV45).
    sites: acquisition sites, subjects spread over them evenly by the seed; site_effect: strength
    of their scanner differences (0: none); site_prevalence_shift: per-site shift of the amyloid
    propensity (0: none). See sites.py.
    """
    if tracers is None:
        tracers = layouts.DEFAULT_TRACERS.get(layout, DEFAULT_TRACERS)
    contrasts, tracers = tuple(contrasts), tuple(tracers)
    _check_args(n_subjects, contrasts, tracers, resolution, effect_mri, effect_pet, n_jobs, layout)
    check_site_args(sites, site_effect, site_prevalence_shift, n_subjects)
    try:
        anat = anatomy.resolve_anatomy(anatomy_source)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from exc
    root = Path(out_dir).absolute()
    _prepare_output(root, overwrite)
    template_mm = 1 if resolution < 1.5 else 2
    src = anatomy.load_source(template_mm, anat)  # before forking: workers inherit it
    root_seq = np.random.SeedSequence(seed)
    phase = float(np.random.default_rng(root_seq.spawn(1)[0]).random())
    profiles = site_profiles(seed, sites, site_effect, site_prevalence_shift)
    jobs = [subject.Job(i, layouts.participant(layout, i, n_subjects),
                        np.random.SeedSequence(seed, spawn_key=(1, i)), phase, root, template_mm,
                        anat, contrasts, tracers, resolution, effect_mri, effect_pet, layout,
                        profiles[k])
            for i, k in enumerate(assign_sites(seed, n_subjects, sites))]
    try:
        if n_jobs == 1 or n_subjects == 1:
            results = [subject.run(job, src) for job in jobs]
        else:
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(min(n_jobs, n_subjects), mp_context=ctx) as pool:
                results = list(pool.map(_run_job, jobs))
    except OSError as exc:
        raise OutputError(f"cannot write the cohort to {root}: {exc}") from exc
    params = {"n_subjects": n_subjects, "contrasts": list(contrasts), "tracers": list(tracers),
              "resolution": resolution, "template_mm": template_mm, "effect_mri": effect_mri,
              "effect_pet": effect_pet, "anatomy": anat, "layout": layout, "sites": sites,
              "site_effect": site_effect, "site_prevalence_shift": site_prevalence_shift}  # n_jobs: no effect
    return _write_tables(root, seed, params, src, jobs, results, profiles)


def _write_tables(root: Path, seed: int, params: dict[str, Any], src: anatomy.Source,
                  jobs: list[subject.Job], results: list[dict[str, list[dict[str, Any]]]],
                  profiles: list[Site]) -> CohortTruth:
    anat_info = {"head": src.head, "regions": src.region_source, **src.files}
    layout = params["layout"]
    oracle = truth.oracle_aucs(params["effect_mri"], params["effect_pet"], tuple(params["tracers"]))
    bidsfiles.write_json(root / "dataset_description.json",
                         bidsfiles.layout_description(layout, src.head, seed))
    (root / "README").write_text(bidsfiles.readme(params["n_subjects"], seed, src.head,
                                                  src.region_source, oracle, layout))
    _write_participants(root, layout, jobs, results, profiles)
    if layout == "default":
        bidsfiles.write_json(root / "sessions.json", bidsfiles.SESSIONS_JSON)
    label_file = labels.write_labels(root, layout, [r for res in results for r in res["labels"]])
    sessions = pd.DataFrame([r for res in results for r in res["truth"]])
    images = pd.DataFrame([r for res in results for r in res["images"]])
    images["run"] = images["run"].astype("Int64")  # "1", not "1.0", beside n/a
    meta = {
        "generator": bidsfiles.GENERATOR, "version": __version__, "seed": seed,
        "parameters": params, "anatomy": anat_info, "oracle_auc": oracle,
        "oracle_definition": (
            "Bayes-optimal ROC AUC of one baseline session under the generator's own model: "
            "score = P(Centiloid > 20.6 | observation), observation = the exact MRI-visible "
            "parameters (global atrophy, medial parietal thinning, ventricle expansion) for 'mri', "
            "the PET image's composite Centiloid and tracer for 'pet'; "
            f"{truth.ORACLE_DRAWS} draws, seed {truth.ORACLE_SEED}. Image noise is ignored "
            "(an upper bound for any model)."),
        "model": {"threshold": truth.THRESHOLD, "cl_min": truth.CL_MIN, "cl_range": truth.CL_RANGE,
                  "sd_centiloid": truth.SD_CL,
                  "sd_age": truth.SD_A, "beta_age": truth.BETA_AGE, "slope": truth.SLOPE,
                  "shift": truth.SHIFT, "u_per_year": truth.U_PER_YEAR,
                  "gamma_age": truth.GAMMA_AGE, "sd_g": truth.SD_G, "sd_r": truth.SD_R,
                  "sd_v": truth.SD_V, "pet_sd_centiloid": truth.PET_SD,
                  "centiloid_transforms": {k: {"slope": t.cl_slope, "intercept": t.cl_intercept}
                                           for k, t in pet.TRACERS.items()}},
        "sites": {p.name: p.to_json() for p in profiles}, "site_model": MODEL,
        "truth_columns": TRUTH_COLUMNS, "image_columns": IMAGE_COLUMNS,
        "files": {"truth": "truth.tsv", "images": "images.tsv",
                  "brain_masks": "sub-*/<T1w entities>_desc-brain_mask.nii.gz (on the T1w grid)",
                  "labels": (label_file.relative_to(root).as_posix() if label_file
                             else "sub-*/sub-*_sessions.tsv"),
                  "label_column": labels.LABEL_COLUMN[layout]},
    }
    tdir = root / TRUTH_DIR
    bidsfiles.write_tsv(tdir / "truth.tsv", sessions)
    bidsfiles.write_tsv(tdir / "images.tsv", images)
    bidsfiles.write_json(tdir / "truth.json", meta)
    return CohortTruth(root, seed, params, anat_info, oracle, sessions, images)


def _write_participants(root: Path, layout: str, jobs: list[subject.Job],
                        results: list[dict[str, list[dict[str, Any]]]], profiles: list[Site]) -> None:
    """participants.tsv/json (a site column only in multi-site cohorts) and the sessions.tsv files."""
    participants = []
    for job, res in zip(jobs, results, strict=True):
        first = res["truth"][0]
        participants.append({"participant_id": job.participant, "age": first["age"], "sex": first["sex"],
                             "site": job.site.name})
        if layout in bidsfiles.SESSION_COLUMNS:
            bidsfiles.write_tsv(root / job.participant / f"{job.participant}_sessions.tsv",
                                bidsfiles.sessions_table(res["sessions"], layout))
    levels = {p.name: p.description() for p in profiles} if len(profiles) > 1 else None
    bidsfiles.write_tsv(root / "participants.tsv", bidsfiles.participants_table(participants, levels is not None))
    bidsfiles.write_json(root / "participants.json", bidsfiles.participants_json(levels))


def load_truth(out_dir: str | Path) -> CohortTruth:
    """Re-read the ground truth of a cohort written by generate_cohort."""
    root = Path(out_dir).absolute()
    meta = json.loads((root / TRUTH_DIR / "truth.json").read_text())
    read = lambda name: pd.read_csv(root / TRUTH_DIR / name, sep="\t", na_values=["n/a"],  # noqa: E731
                                    keep_default_na=False)
    sessions = read("truth.tsv")
    for col in ("tracer", "orientation", "mri_session", "other_pet", "site"):
        if col in sessions:
            sessions[col] = sessions[col].astype(object).fillna("n/a")
    return CohortTruth(root, meta["seed"], meta["parameters"], meta["anatomy"],
                       meta["oracle_auc"], sessions, read("images.tsv"))
