"""Where each layout keeps its amyloid labels (never in the BIDS tables for oasis3 / openneuro).

oasis3        sourcedata/labels/OASIS3_amyloid_centiloid.csv, keyed by the PET session
              (OAS30001_PIB_d0423), four Centiloid variants; the method's label is
              Centiloid_fSUVR_rsf_TOT_CORTMEAN > 20.6. fBP needs a dynamic 0-60 min scan: empty for
              the F-18 tracers. One row matches no PET session of the tree; one cell is "n/a".
openneuro     sourcedata/labels/amyloid_labels.tsv: participant_id / session_id WITHOUT the
              sub- / ses- prefixes, centiloid.
clinica-adni  sub-*/sub-*_sessions.tsv column centiloid (bidsfiles).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bids_amyloid.synth import pet
from bids_amyloid.synth.layouts import SessionSpec

OASIS_CSV = Path("sourcedata", "labels", "OASIS3_amyloid_centiloid.csv")
OPENNEURO_TSV = Path("sourcedata", "labels", "amyloid_labels.tsv")
OASIS_COLUMNS = ("oasis_session_id", "subject_id", "tracer", "Centiloid_fBP_TOT_CORTMEAN",
                 "Centiloid_fSUVR_TOT_CORTMEAN", "Centiloid_fBP_rsf_TOT_CORTMEAN",
                 "Centiloid_fSUVR_rsf_TOT_CORTMEAN")
LABEL_COLUMN = {"oasis3": "Centiloid_fSUVR_rsf_TOT_CORTMEAN", "openneuro": "centiloid",
                "clinica-adni": "centiloid", "default": "centiloid"}


def _oasis_row(oas: str, tracer: pet.Tracer, day: str, cl: float,
               rng: np.random.Generator) -> dict[str, Any]:
    # Plausible variants: without the regional spread function (rsf) partial-volume correction
    # Centiloids are compressed; BP (Logan, dynamic PiB only) differs again.
    z = rng.normal(0.0, 1.0, 3)
    pib = tracer.key == "PiB"
    return {"oasis_session_id": f"{oas}_{tracer.acq}_{day}", "subject_id": oas, "tracer": tracer.acq,
            "Centiloid_fBP_TOT_CORTMEAN": f"{0.88 * cl + 3.0 * z[0]:.4f}" if pib else "",
            "Centiloid_fSUVR_TOT_CORTMEAN": f"{0.9 * cl + 2.5 * z[1]:.4f}",
            "Centiloid_fBP_rsf_TOT_CORTMEAN": f"{1.04 * cl + 3.0 * z[2]:.4f}" if pib else "",
            "Centiloid_fSUVR_rsf_TOT_CORTMEAN": f"{cl:.2f}"}


def label_rows(layout: str, index: int, sub: str, specs: list[SessionSpec],
               truth_rows: list[dict[str, Any]], rng: np.random.Generator) -> list[dict[str, Any]]:
    """This subject's rows of the layout's label table (drawn last: nothing else depends on them)."""
    pet_rows = [(s, r) for s, r in zip(specs, truth_rows, strict=True) if s.tracer]
    if layout == "openneuro":
        return [{"participant_id": sub[4:], "session_id": r["session_id"][4:],
                 "centiloid": f"{r['centiloid']:.2f}"} for _, r in pet_rows]
    if layout != "oasis3":
        return []
    oas = sub[4:]
    rows = [_oasis_row(oas, pet.TRACERS[s.tracer], s.session, r["centiloid"], rng)  # type: ignore[index]
            for s, r in pet_rows]
    if index == 0 and pet_rows:  # a PET session that was not downloaded
        s, r = pet_rows[-1]
        last = max(sp.day for sp in specs)
        rows.append(_oasis_row(oas, pet.TRACERS[s.tracer], f"d{last + 1100:04d}",  # type: ignore[index]
                               round(r["centiloid"] + 6.0, 2), rng))
    if index == 2 and rows:  # a missing value in a variant column
        rows[0]["Centiloid_fSUVR_TOT_CORTMEAN"] = "n/a"
    return rows


def write_labels(root: Path, layout: str, rows: list[dict[str, Any]]) -> Path | None:
    """Write the layout's external label table; None when the labels live in sessions.tsv."""
    if layout == "oasis3":
        path, sep, cols = root / OASIS_CSV, ",", OASIS_COLUMNS
    elif layout == "openneuro":
        path, sep, cols = root / OPENNEURO_TSV, "\t", ("participant_id", "session_id", "centiloid")
    else:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [sep.join(cols)] + [sep.join(str(r[c]) for c in cols) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path
