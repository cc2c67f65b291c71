"""On-disk layouts of real amyloid datasets: subject/session labels, file names, session designs
and PET styles, as the public sources in docs/datasets.md describe them.

default       the generator's own valid BIDS (ses-M<months>, trc-, static PET with full sidecars)
oasis3        the OASIS-3 BIDS download script: ses-d<days>, acq-<tracer>, raw 4-D dynamic PET
              with draft or defective sidecars and _pet.tsv frame tables, labels in a CSV
clinica-adni  Clinica adni-to-bids: ses-M<months>, 3-D co-registered averaged PET without JSON,
              T1w without JSON, labels in sessions.tsv
openneuro     the Dallas Lifespan Brain Study (ds004856): ses-wave<n>, acq-MPRAGE_run-1_T1w,
              FLAIR as acq-FLAIR_T2w, static AV45 whose JSON lists two frames, no labels

Designs cycle over the subject index (like the default one) so that 6 subjects show every case;
the quirks that must occur exactly once ("ONE file") are tied to index < 6.
"""
from __future__ import annotations

from dataclasses import dataclass

LAYOUTS = ("default", "oasis3", "clinica-adni", "openneuro")
PAIR_MAX_DAYS = 365  # the app (and OASIS) pair a PET with an MRI at most this far away
DAYS_PER_MONTH = 30.4375


@dataclass(frozen=True)
class PetSpec:
    tracer: str  # key of pet.ALL_TRACERS
    run: int | None = None  # run- entity (None: no run in the name)
    protocol: str = "static"  # key of dynamic.frames
    sidecar: str = "standard"  # petmeta.STYLES
    defects: tuple[str, ...] = ()  # petmeta.DEFECTS
    broken: bool = False  # an HTML error page saved under the .nii.gz name


@dataclass(frozen=True)
class SessionSpec:
    session: str  # label without "ses-", e.g. "M024", "d0423", "wave1"
    months: int
    mri: bool
    tracer: str | None  # the session's amyloid tracer (key of pet.TRACERS), None = no amyloid PET
    t1_runs: int = 1
    mri_session: str | None = None  # MRI session a PET-only session is matched to (None: unpaired)
    days: int | None = None  # days since entry where the labels count days (OASIS-3)
    pets: tuple[PetSpec, ...] = ()  # empty: one static PET of `tracer` (the default layout)
    sess_typo: bool = False  # OASIS-3: the T1w file is named "sess-" instead of "ses-"

    @property
    def years(self) -> float:
        return self.days / 365.25 if self.days is not None else self.months / 12.0

    @property
    def day(self) -> int:
        return self.days if self.days is not None else round(self.months * DAYS_PER_MONTH)

    def pet_list(self) -> tuple[PetSpec, ...]:
        return self.pets or ((PetSpec(self.tracer),) if self.tracer else ())


def participant(layout: str, index: int, n_subjects: int) -> str:
    if layout == "oasis3":
        return f"sub-OAS3{index + 1:04d}"
    if layout == "clinica-adni":  # ADNI PTID: site + "S" + roster ID
        site = (11, 2, 941, 23, 127, 6, 31)[index % 7]
        return f"sub-ADNI{site:03d}S{4105 + 13 * index:04d}"
    if layout == "openneuro":
        return f"sub-{1003 + 11 * index}"
    return f"sub-{index + 1:0{max(3, len(str(n_subjects)))}d}"


DEFAULT_TRACERS = {"default": ("PiB", "AV45"), "oasis3": ("PiB", "AV45"),
                   "clinica-adni": ("AV45", "FBB"), "openneuro": ("AV45",)}
# anat file names per layout: contrast -> (name after "sub-X_ses-Y_", has a JSON sidecar);
# contrasts missing here are not written in that layout.
_ANAT = {
    "oasis3": {"T1w": ("run-{run:02d}_T1w", True), "T2w": ("acq-TSE_T2w", True),
               "FLAIR": ("FLAIR", True), "T2starw": ("T2star", True)},  # deprecated suffix
    "clinica-adni": {"T1w": ("T1w", False), "FLAIR": ("FLAIR", True)},
    "openneuro": {"T1w": ("acq-MPRAGE_run-{run}_T1w", True), "T2w": ("acq-TSE_run-1_T2w", True),
                  "FLAIR": ("acq-FLAIR_run-1_T2w", True),  # DLBS stores FLAIR as T2w
                  "T2starw": ("acq-GRE_run-1_T2starw", True)},
}


def anat_name(layout: str, sub: str, ses: str, contrast: str, run: int, runs: int,
              typo: bool = False) -> tuple[str, bool] | None:
    """(file stem, has JSON) of an anat image, or None when the layout has no such file."""
    if layout == "default":
        return f"{sub}_{ses}" + (f"_run-{run}" if runs > 1 else "") + f"_{contrast}", True
    spec = _ANAT[layout].get(contrast)
    if spec is None:
        return None
    if typo and contrast == "T1w":  # OASIS-3: "sub-OAS31459_sess-d0125_T1w"
        return f"{sub}_sess-{ses[4:]}_T1w", True
    return f"{sub}_{ses}_" + spec[0].format(run=run), spec[1]


def anat_run(layout: str, run: int, runs: int) -> int | None:
    """The run entity of an anat image (images.tsv), None when the name has none."""
    if layout == "default" or layout == "clinica-adni":
        return run if runs > 1 else None
    return run


def pet_name(layout: str, sub: str, ses: str, tracer_label: str, acq: str, family: str,
             spec: PetSpec) -> str:
    if layout == "oasis3":  # the tracer only in acq-; run numbers count every PET of the session
        return f"{sub}_{ses}_acq-{acq}" + (f"_run-{spec.run:02d}" if spec.run else "") + "_pet"
    if layout == "openneuro":
        return f"{sub}_{ses}_trc-{tracer_label}_run-{spec.run or 1}_pet"
    rec = "_rec-coregavg" if layout == "clinica-adni" and family != "amyloid" else ""
    return f"{sub}_{ses}_trc-{tracer_label}{rec}_pet"


def design(layout: str, index: int, tracers: tuple[str, ...]) -> list[SessionSpec]:
    return {"default": design_default, "oasis3": design_oasis3,
            "clinica-adni": design_clinica, "openneuro": design_openneuro}[layout](index, tracers)


def design_default(index: int, tracers: tuple[str, ...]) -> list[SessionSpec]:
    """Session layouts cycle with the subject index so that 6 subjects already show every case."""
    t0, t1 = tracers[index % len(tracers)], tracers[(index + 1) % len(tracers)]
    kind = index % 6
    if kind == 0:  # second session is PET only: matched to the MRI of ses-M000 (183 days)
        return [SessionSpec("M000", 0, True, t0), SessionSpec("M006", 6, False, t0, 1, "M000")]
    if kind == 1:  # two T1w runs in one session (run-1 coarser)
        return [SessionSpec("M000", 0, True, t0, t1_runs=2)]
    if kind == 2:  # three sessions, tracer switches at the last one
        return [SessionSpec("M000", 0, True, t0), SessionSpec("M024", 24, True, t0),
                SessionSpec("M048", 48, True, t1)]
    if kind == 4:  # an MRI-only follow-up (no Centiloid: must be excluded from training)
        return [SessionSpec("M000", 0, True, t0), SessionSpec("M036", 36, True, None)]
    if kind == 5:
        return [SessionSpec("M000", 0, True, t0), SessionSpec("M018", 18, True, t0)]
    return [SessionSpec("M000", 0, True, t0)]


def _d(days: int, mri: bool, tracer: str | None = None, *pets: PetSpec, mri_session: int | None = None,
       t1_runs: int = 1, typo: bool = False) -> SessionSpec:
    return SessionSpec(f"d{days:04d}", round(days / DAYS_PER_MONTH), mri, tracer, t1_runs,
                       None if mri_session is None else f"d{mri_session:04d}", days, pets, typo)


def design_oasis3(index: int, tracers: tuple[str, ...]) -> list[SessionSpec]:
    """OASIS-3: MRI and PET mostly on different days (30-300 days apart), raw dynamic PET."""
    t0, t1 = tracers[index % len(tracers)], tracers[(index + 1) % len(tracers)]
    kind, first = index % 6, index < 6
    gap = 30 + (53 * index + 41) % 271  # 30-300 days between a paired MRI and PET
    full = lambda tr, *defects, **kw: PetSpec(tr, protocol="full", defects=defects, **kw)  # noqa: E731
    if kind == 0:  # (a) PET session `gap` days after the MRI session
        return [_d(0, True), _d(gap, False, t0, full(t0, "na-numbers"), mri_session=0)]
    if kind == 1:  # (b) same-day MRI (two T1w runs) and PET; the only AV45 is run-02
        return [_d(0, True, t0, full(t0, run=2, sidecar="draft"), t1_runs=2)]
    if kind == 2:  # (c) a normal pair + a PET > 365 days from every MRI (unpaired)
        return [_d(0, True), _d(gap, False, t0, full(t0, "units-bq-ml", "no-timezero"), mri_session=0),
                _d(gap + 500, False, t1, full(t1, sidecar="draft"))]
    if kind == 3:  # (d) same-day pair with the "sess-" T1w file, then an MRI-only follow-up
        cum = ("cumulative-duration",) if first else ()
        return [_d(0, True), _d(125, True, t0, full(t0, *cum), typo=first),
                _d(725 + gap, True)]
    if kind == 4:  # (e) PET first, two runs of one tracer: run-01 0-30 min, run-02 30-70 min
        tr = "PiB" if "PiB" in tracers else t0
        no_time = ("no-timing",) if first else ()
        return [_d(0, False, tr, PetSpec(tr, 1, "early", "standard", no_time),
                   PetSpec(tr, 2, "late", "draft"), mri_session=gap), _d(gap, True)]
    # kind 5: a failed download (HTML page) next to the good run; a tau session
    return [_d(0, True, t0, PetSpec(t0, 1, "full", defects=("na-numbers", "no-timezero"),
                                    broken=True), full(t0, run=2, sidecar="draft")),
            _d(gap, False, None, PetSpec("AV1451", 1, "full", "draft"), mri_session=0)]


def _m(months: int, mri: bool, tracer: str | None = None, *pets: PetSpec,
       mri_session: str | None = None, label: str | None = None) -> SessionSpec:
    return SessionSpec(label or f"M{months:03d}", months, mri, tracer, 1, mri_session, None, pets)


def design_clinica(index: int, tracers: tuple[str, ...]) -> list[SessionSpec]:
    """ADNI via Clinica: 3-D averaged PET without JSON; FDG beside amyloid in some sessions."""
    t0, t1 = tracers[index % len(tracers)], tracers[(index + 1) % len(tracers)]
    amy = lambda tr: PetSpec(tr, sidecar="none")  # noqa: E731
    fdg = PetSpec("FDG", sidecar="none")
    kind = index % 6
    if kind == 0:
        return [_m(0, True, t0, amy(t0), fdg), _m(24, True, t0, amy(t0))]
    if kind == 1:  # PET-only M024: 730 days from the only MRI (unpaired)
        return [_m(0, True, t0, amy(t0)), _m(24, False, t1, amy(t1))]
    if kind == 2:  # tracer switch at M048
        return [_m(0, True, t0, amy(t0)), _m(24, True, t0, amy(t0)), _m(48, True, t1, amy(t1))]
    if kind == 3:  # MRI-only follow-up
        return [_m(0, True, t0, amy(t0), fdg), _m(12, True)]
    if kind == 4:  # MRI-only baseline, PET-only M006 paired with it (183 days)
        return [_m(0, True), _m(6, False, t0, amy(t0), mri_session="M000")]
    return [_m(0, True, t0, amy(t0)), _m(24, True, t0, amy(t0))]


def design_openneuro(index: int, tracers: tuple[str, ...]) -> list[SessionSpec]:
    """DLBS: waves about 4 and 8 years apart, MRI and PET of a wave in the same session."""
    t0 = tracers[index % len(tracers)]
    amy = lambda tr: PetSpec(tr, 1, "window", "two-frames")  # noqa: E731
    tau = PetSpec("AV1451", 1, "window", "standard")
    w = lambda n, mri, tr=None, *pets: _m((0, 48, 100)[n - 1], mri, tr, *pets, label=f"wave{n}")  # noqa: E731
    kind = index % 6
    if kind == 0:
        return [w(1, True, t0, amy(t0))]
    if kind == 1:  # two T1w runs at wave1
        s = w(1, True, t0, amy(t0))
        return [SessionSpec(s.session, 0, True, t0, 2, None, None, s.pets), w(2, True, t0, amy(t0))]
    if kind == 2:  # tau beside amyloid at wave3
        return [w(1, True, t0, amy(t0)), w(2, True), w(3, True, t0, amy(t0), tau)]
    if kind == 3:
        return [w(1, True), w(2, True, t0, amy(t0))]
    if kind == 4:  # tau only at wave3
        return [w(1, True, t0, amy(t0)), w(3, True, None, tau)]
    return [w(1, True, t0, amy(t0)), w(2, False, t0, amy(t0))]  # wave2 PET-only: unpaired
