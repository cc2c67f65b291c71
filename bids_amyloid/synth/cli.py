"""bids_amyloid-synth OUT_DIR [options]: write a synthetic BIDS amyloid cohort."""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

from bids_amyloid import __version__
from bids_amyloid.errors import BidsAmyloidError
from bids_amyloid.synth.cohort import DEFAULT_CONTRASTS, generate_cohort
from bids_amyloid.synth.layouts import DEFAULT_TRACERS, LAYOUTS
from bids_amyloid.synth.mri import CONTRASTS
from bids_amyloid.synth.pet import TRACERS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors exit 64 (BIDS-Apps draft), not 2
        self.print_usage(sys.stderr)
        self.exit(64, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bids_amyloid-synth",
                description="Write a realistic synthetic BIDS cohort (T1w/T2w/FLAIR/T2starw MRI and "
                            "amyloid PET) with its ground truth in OUT_DIR/sourcedata/synth/.")
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder (must be empty or absent)")
    p.add_argument("--n-subjects", type=int, default=6, help="participants (default 6)")
    p.add_argument("--seed", type=int, default=0, help="master random seed (default 0)")
    p.add_argument("--contrasts", nargs="+", default=list(DEFAULT_CONTRASTS), choices=list(CONTRASTS),
                   help="MRI contrasts (T1w required)")
    p.add_argument("--resolution", type=float, default=1.0,
                   help="voxel-size scale in mm: 1 = T1w at 1 mm; 2 = fast test cohorts")
    p.add_argument("--tracers", nargs="+", default=None, choices=list(TRACERS),
                   help="amyloid tracers (default: the layout's, "
                        + "; ".join(f"{k}: {' '.join(v)}" for k, v in DEFAULT_TRACERS.items()) + ")")
    p.add_argument("--layout", default="default", choices=list(LAYOUTS),
                   help="on-disk style: default (valid BIDS) or that of a real dataset: oasis3 "
                        "(OASIS-3 download), clinica-adni (Clinica adni-to-bids), openneuro "
                        "(DLBS ds004856)")
    p.add_argument("--effect-mri", type=float, default=1.0,
                   help="strength of the MRI-visible amyloid correlate (0 = none)")
    p.add_argument("--effect-pet", type=float, default=1.0,
                   help="PET signal-to-noise of the Centiloid (higher = cleaner)")
    p.add_argument("--sites", type=int, default=1,
                   help="acquisition sites, subjects spread evenly over them (default 1; >1 adds a "
                        "participants.tsv column `site`)")
    p.add_argument("--site-effect", type=float, default=0.0,
                   help="strength of the between-site MRI scanner differences: tissue contrast, "
                        "noise, bias field, scanner model (0 = sites differ in name only; 1 = "
                        "+-10%% contrast)")
    p.add_argument("--site-prevalence-shift", type=float, default=0.0,
                   help="per-site shift of the amyloid propensity (SD units), so that prevalence "
                        "differs between sites (default 0)")
    p.add_argument("--anatomy", default="auto", choices=["auto", "ch2", "nilearn"],
                   help="head source: ch2 (mricron-data) or synthetic shells (default auto)")
    p.add_argument("--n-jobs", type=int, default=1, help="worker processes (results do not depend on it)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier output of this tool in OUT_DIR")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        res = generate_cohort(args.out_dir, n_subjects=args.n_subjects, seed=args.seed,
                              contrasts=args.contrasts, resolution=args.resolution,
                              tracers=args.tracers, effect_mri=args.effect_mri,
                              effect_pet=args.effect_pet, anatomy_source=args.anatomy,
                              n_jobs=args.n_jobs, overwrite=args.overwrite, layout=args.layout,
                              sites=args.sites, site_effect=args.site_effect,
                              site_prevalence_shift=args.site_prevalence_shift)
    except BidsAmyloidError as exc:
        print(f"bids_amyloid-synth: error: {exc}", file=sys.stderr)
        return exc.exit_code
    pet = res.pet_sessions
    print(f"wrote {args.n_subjects} subject(s), {len(res.sessions)} sessions, {len(pet)} PET sessions "
          f"({int(pet['label'].sum())} amyloid positive) to {res.root} in "
          f"{time.perf_counter() - start:.1f} s; oracle AUC MRI {res.oracle_auc['mri']:.3f}, "
          f"PET {res.oracle_auc['pet']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
