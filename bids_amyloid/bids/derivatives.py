"""The one layout of the output folder: every file the app writes or reads there is named here.

Writers and readers ask a :class:`Derivatives` (the whole folder) or its per-session view
:class:`SessionDerivatives` for paths, so a name is decided in one place. Non-standard files
(slice tensors, predictions, saliency, tables) get BIDS-like names and are listed in
``.bidsignore`` (``bids.dataset``).

```
OUTPUT_DIR/
  dataset_description.json  .bidsignore  sub-<s>.html (participant report)
  logs/      <run>_config.json, participant-<tag>_{scans,pairing}.tsv
  sub-<s>/figures/          QC figures, saliency PNGs
  sub-<s>/ses-<t>/anat/     MRI derivatives (of the MRI session), predictions + saliency (of the session)
  sub-<s>/ses-<t>/pet/      PET derivatives (of the PET session)
  group/     desc-{oof,val}_predictions.tsv, desc-{cv,zones,subgroup}_metrics.tsv,
             sub-all_desc-amyloid_predictions.tsv, group_report.html
  models/    the bundle (one contrast) or models/<contrast>/ (several); splits.json
```
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bids_amyloid.bids.names import bids_name, derivative_path, session_key
from bids_amyloid.config import TEMPLATE_SPACE


class Derivatives:
    """Paths of the output folder ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    # ------------------------------------------------------------------ top level and logs
    @property
    def description(self) -> Path:
        return self.root / "dataset_description.json"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def run_config(self, run: str) -> Path:
        """``logs/<run>_config.json`` (run: 'group' or 'participant-<tag>')."""
        return self.logs_dir / f"{run}_config.json"

    def run_summary(self, tag: str) -> tuple[Path, Path]:
        """The participant run summary tables: every scan with its fate, and the MRI-PET pairing."""
        return self.logs_dir / f"participant-{tag}_scans.tsv", self.logs_dir / f"participant-{tag}_pairing.tsv"

    def subject_dir(self, subject: str) -> Path:
        return self.root / f"sub-{subject}"

    def figures_dir(self, subject: str) -> Path:
        return self.subject_dir(subject) / "figures"

    def participant_report(self, subject: str) -> Path:
        return self.root / f"sub-{subject}.html"

    def participant_reports(self) -> list[Path]:
        return sorted(self.root.glob("sub-*.html"))

    def session(self, subject: str, session: str | None, *, mri_session: str | None = None, anchor: str = "T1w",
                registration: str = "affine") -> SessionDerivatives:
        """The files of one session (MRI derivatives from ``mri_session``, default ``session``)."""
        mri = mri_session if mri_session is not None else session
        return SessionDerivatives(self, subject, session, mri, anchor, ".h5" if registration == "syn" else ".mat")

    def subject_files(self, subject: str) -> dict[str, dict[str, list[Path]]]:
        """A subject's predictions, saliency maps, regions tables and QC figures by session label
        ('' for none; a session with other outputs only still gets an entry)."""
        root = self.subject_dir(subject)
        found: dict[str, dict[str, list[Path]]] = {}
        patterns = {"predictions": "*_desc-amyloid_predictions.tsv", "saliency": "*_saliency.nii.gz",
                    "regions": "*_regions.tsv"}
        for kind, pattern in patterns.items():
            for path in sorted(root.glob(f"**/anat/{pattern}")):
                found.setdefault(_session_of(path), {}).setdefault(kind, []).append(path)
        for path in sorted(self.figures_dir(subject).glob("*")):
            if path.suffix.lower() in (".svg", ".png") and not path.name.endswith("_saliency.png"):
                found.setdefault(_session_of(path), {}).setdefault("qc", []).append(path)
        for folder in sorted(root.glob("ses-*")):
            if folder.is_dir():
                found.setdefault(folder.name[len("ses-"):], {})
        return found

    def overlay_figure(self, saliency: Path) -> Path:
        """The cached PNG overlay of a saliency map (in the subject's figures folder)."""
        return self.figures_dir(saliency.name.split("_")[0][len("sub-"):]) / (saliency.name.split(".")[0] + ".png")

    def session_predictions(self) -> list[Path]:
        """Every per-session predictions table (for the gathered table and the report)."""
        return sorted(set(self.root.glob("sub-*/ses-*/anat/*_desc-amyloid_predictions.tsv"))
                      | set(self.root.glob("sub-*/anat/*_desc-amyloid_predictions.tsv")))

    # ------------------------------------------------------------------ group level
    @property
    def group_dir(self) -> Path:
        return self.root / "group"

    @property
    def oof_predictions(self) -> Path:
        return self.group_dir / "desc-oof_predictions.tsv"

    @property
    def val_predictions(self) -> Path:
        return self.group_dir / "desc-val_predictions.tsv"

    @property
    def cv_metrics(self) -> Path:
        return self.group_dir / "desc-cv_metrics.tsv"

    @property
    def zone_metrics(self) -> Path:
        """Out-of-fold rule-out / intermediate / rule-in zones with NPV / PPV."""
        return self.group_dir / "desc-zones_metrics.tsv"

    @property
    def subgroup_metrics(self) -> Path:
        """Out-of-fold metrics per tracer and per ``--subgroup-column`` value."""
        return self.group_dir / "desc-subgroup_metrics.tsv"

    @property
    def all_predictions(self) -> Path:
        """Participant-level predictions of every session, gathered."""
        return self.group_dir / "sub-all_desc-amyloid_predictions.tsv"

    @property
    def group_report(self) -> Path:
        return self.group_dir / "group_report.html"

    def ablation_tables(self) -> list[Path]:
        return sorted(self.group_dir.glob("*ablation*.tsv"))

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def splits(self) -> Path:
        return self.models_dir / "splits.json"

    def bundle_dir(self, contrast: str, n_contrasts: int) -> Path:
        """``models/`` for one trained contrast, ``models/<contrast>/`` for several."""
        return self.models_dir if n_contrasts == 1 else self.models_dir / contrast

    def bundles(self) -> list[Path]:
        """Bundle folders written here (those holding a bundle.json)."""
        return sorted({p.parent for p in (*self.models_dir.glob("bundle.json"), *self.models_dir.glob("*/bundle.json"))})


def _session_of(path: Path) -> str:
    parts = [p for p in path.name.split("_") if p.startswith("ses-")]
    return parts[0][len("ses-"):] if parts else ""


@dataclass(frozen=True)
class SessionDerivatives:
    """The files of one session: MRI derivatives live in the MRI session's folder (another
    session's when the MRI is borrowed), PET derivatives and predictions in this session's."""

    layout: Derivatives
    sub: str
    ses: str | None
    mri_ses: str | None
    anchor: str
    xfm_ext: str

    @property
    def key(self) -> str:
        return session_key(self.sub, self.ses)

    def _anat(self, suffix: str, ext: str = ".nii.gz", **entities: str | None) -> Path:
        return derivative_path(self.layout.root, self.sub, self.mri_ses, "anat", suffix, ext, **entities)

    def _pet(self, suffix: str, ext: str, **entities: str | None) -> Path:
        return derivative_path(self.layout.root, self.sub, self.ses, "pet", suffix, ext, **entities)

    def _own(self, suffix: str, ext: str, **entities: str | None) -> Path:
        return derivative_path(self.layout.root, self.sub, self.ses, "anat", suffix, ext, **entities)

    # ------------------------------------------------------------------ folders
    @property
    def anat_dir(self) -> Path:
        return self._anat(self.anchor).parent

    @property
    def pet_dir(self) -> Path:
        return self._pet("pet", ".nii.gz").parent

    @property
    def figures_dir(self) -> Path:
        return self.layout.figures_dir(self.sub)

    # ------------------------------------------------------------------ MRI (of the MRI session)
    def native_preproc(self) -> Path:
        return self._anat(self.anchor, desc="preproc")

    def brain_mask(self) -> Path:
        return self._anat("mask", desc="brain")

    def template_mask(self) -> Path:
        return self._anat("mask", space=TEMPLATE_SPACE, desc="brain")

    def xfm_to_template(self) -> Path:
        return self._anat("xfm", self.xfm_ext, **{"from": self.anchor, "to": TEMPLATE_SPACE, "mode": "image"})

    def xfm_from_template(self) -> Path:
        return self._anat("xfm", self.xfm_ext, **{"from": TEMPLATE_SPACE, "to": self.anchor, "mode": "image"})

    def template_preproc(self, contrast: str) -> Path:
        return self._anat(contrast, space=TEMPLATE_SPACE, desc="preproc")

    def xfm_to_anchor(self, contrast: str) -> Path:
        return self._anat("xfm", ".mat", **{"from": contrast, "to": self.anchor, "mode": "image"})

    def slices(self, contrast: str) -> Path:
        """MRI slice tensor (float16 .npy, [n_slices, H, W]): the model input."""
        return self._anat(contrast, ".npy", space=TEMPLATE_SPACE, desc="slices")

    def figure(self, contrast: str, desc: str) -> Path:
        return self.figures_dir / bids_name(self.sub, self.mri_ses, contrast, ".svg", desc=desc)

    # ------------------------------------------------------------------ PET (of this session)
    def pet_static(self, tracer: str) -> Path:
        return self._pet("pet", ".nii.gz", trc=tracer, desc="static")

    def pet_suvr(self, tracer: str) -> Path:
        return self._pet("pet", ".nii.gz", trc=tracer, space=TEMPLATE_SPACE, desc="suvr")

    def pet_xfm(self, tracer: str) -> Path:
        return self._pet("xfm", ".mat", trc=tracer, **{"from": "petref", "to": self.anchor, "mode": "image"})

    def pet_slices(self, tracer: str) -> Path:
        return self._pet("pet", ".npy", trc=tracer, space=TEMPLATE_SPACE, desc="slices")

    def pet_figure(self, tracer: str) -> Path:
        return self.figures_dir / bids_name(self.sub, self.ses, "pet", ".svg", trc=tracer, desc="petreg")

    # ------------------------------------------------------------------ predictions (of this session)
    def predictions(self) -> Path:
        return self._own("predictions", ".tsv", desc="amyloid")

    def saliency(self, contrast: str, method: str) -> dict[str, Path]:
        """Template-space map, native map and regions table of one contrast and method."""
        desc = f"{method}{contrast}"
        return {"template": self._own("saliency", ".nii.gz", space=TEMPLATE_SPACE, desc=desc),
                "native": self._own("saliency", ".nii.gz", desc=desc),
                "regions": self._own("regions", ".tsv", space=TEMPLATE_SPACE, desc=desc)}

    def saliency_figure(self, contrast: str, method: str) -> Path:
        return self.figures_dir / bids_name(self.sub, self.ses, "saliency", ".png", desc=f"{method}{contrast}")
