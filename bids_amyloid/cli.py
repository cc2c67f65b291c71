"""Command line: ``bids_amyloid BIDS_DIR OUTPUT_DIR {participant,group} [options]``.

Parsing, guards, logging and exit codes only; the work is done by ``workflows``. Heavy modules
are imported inside functions so ``--help`` and ``--version`` are instant.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path

from bids_amyloid import __version__
from bids_amyloid.config import (CONTRASTS, Config, InferConfig, LabelConfig, ModelConfig, PreprocessConfig,
                                 TrainConfig)
from bids_amyloid.errors import EXIT_CODES, BidsAmyloidError, OutputError, UsageError

log = logging.getLogger("bids_amyloid")

SLOPPY_EPOCHS = (2, 2, 3)
"""Epochs per phase under --sloppy (TESTING ONLY: shows the pipeline runs, not that it learns)."""
SLOPPY_LR_SCALE = 10.0
"""Learning-rate multiplier under --sloppy: a few epochs at the method's rates leave the random tiny
backbone's heads where they started (benchmarks/training.py: teacher fold AUC 0.97 with 10)."""


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; the BIDS-Apps convention is 64."""

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(64, f"{self.prog}: error: {message}\n")


def _exit_code_epilog() -> str:
    return "exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="bids_amyloid",
        description="Amyloid-beta positivity from MRI alone (BIDS-App). 'participant' preprocesses MRI/PET and, "
        "with --model, predicts; 'group' trains the PET+MRI teacher and the MRI-only student with cross-validation.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_exit_code_epilog(),
    )
    p.add_argument("bids_dir", type=Path, help="input BIDS dataset (read-only)")
    p.add_argument("output_dir", type=Path, help="output derivatives folder")
    p.add_argument("analysis_level", help="'participant' or 'group'")
    p.add_argument("--version", action="version", version=f"bids_amyloid {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging; tracebacks on errors")

    sel = p.add_argument_group("selection")
    sel.add_argument("--participant-label", "--participant_label", nargs="+", default=[], metavar="LABEL",
                     help="subjects to process, with or without 'sub-'")
    sel.add_argument("--session-label", "--session_label", nargs="+", default=[], metavar="LABEL",
                     help="sessions to process, with or without 'ses-'")
    sel.add_argument("--contrast", nargs="+", default=["T1w"], choices=CONTRASTS, help="MRI contrast(s) (default T1w)")
    sel.add_argument("--bids-filter-file", "--bids_filter_file", type=Path, metavar="FILE",
                     help='JSON of PyBIDS queries per contrast, e.g. {"T1w": {"acquisition": "mprage"}}')
    sel.add_argument("--skip-bids-validation", "--skip_bids_validation", action="store_true",
                     help="do not validate the input with the BIDS validator")
    sel.add_argument("--pet-tracer", nargs="+", metavar="LABEL=FAMILY",
                     help="map a PET tracer label the app does not know to a family (PiB, florbetapir, florbetaben, "
                     "flutemetamol, NAV4694) or to 'skip' (a non-amyloid tracer), e.g. 18FXYZ=florbetapir")
    sel.add_argument("--mri-pet-max-days", type=float, default=Config.__dataclass_fields__["mri_pet_max_days"].default,
                     metavar="DAYS", help="pair a PET session without MRI only with an MRI session at most DAYS away "
                     "(default %(default)g)")

    lab = p.add_argument_group("labels")
    lab.add_argument("--centiloid-column", default=LabelConfig.centiloid_column, metavar="NAME",
                     help="TSV column with Centiloid values (case-insensitive; default %(default)s)")
    lab.add_argument("--centiloid-threshold", type=float, default=LabelConfig.centiloid_threshold, metavar="CL",
                     help="positive when Centiloid > this (default %(default)s)")
    lab.add_argument("--label-column", metavar="NAME", help="TSV column with a ready 0/1 or positive/negative status")
    lab.add_argument("--labels-file", type=Path, metavar="FILE",
                     help="external label table (TSV or CSV) keyed by participant_id [and session_id], e.g. OASIS-3's "
                     "centiloid CSV; wins over the dataset's own tables")

    res = p.add_argument_group("resources")
    res.add_argument("-w", "--work-dir", type=Path, help="scratch folder (default: OUTPUT_DIR-work beside OUTPUT_DIR)")
    res.add_argument("--nprocs", "--n_cpus", type=int, default=1, help="sessions processed in parallel")
    res.add_argument("--omp-nthreads", type=int, default=1, help="threads per process (ANTs, torch)")
    res.add_argument("--mem", "--mem_gb", type=float, metavar="GB", help="memory limit in GiB")
    res.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (falls back to cpu with a warning)")
    res.add_argument("--random-seed", type=int, default=Config.__dataclass_fields__["seed"].default,
                     help="master seed for every random generator (default %(default)s)")
    res.add_argument("--overwrite", action="store_true", help="recompute outputs that already exist")
    res.add_argument("--sloppy", action="store_true", help="TESTING ONLY: cheap registration, tiny random backbone, coarse voxels accepted")

    pre = p.add_argument_group("preprocessing")
    pre.add_argument("--registration", choices=("affine", "syn"), default=PreprocessConfig.registration,
                     help="T1w -> template transform (default %(default)s)")
    pre.add_argument("--suvr-window", nargs="+", metavar="WINDOW",
                     help="static SUVR window in minutes after injection: START END for every tracer, or "
                     "FAMILY=START-END ... (defaults: PiB 50-70, florbetapir 50-60, florbetaben and flutemetamol 90-110, "
                     "NAV4694 50-70)")
    pre.add_argument("--no-frame-realign", action="store_true",
                     help="average the window frames of a dynamic PET without realigning them first")

    mod = p.add_argument_group("model")
    mod.add_argument("--model", type=Path, metavar="PATH",
                     help="participant level: model bundle (or group output holding one) for inference")
    mod.add_argument("--backbone", choices=("biomedclip", "tiny"), default=ModelConfig.backbone,
                     help="vision backbone; 'tiny' is random and TESTING ONLY (default %(default)s)")
    mod.add_argument("--backbone-weights", type=Path, metavar="DIR",
                     help="folder with the vision-tower weights (else $BIDS_AMYLOID_WEIGHTS or the image's copy)")
    mod.add_argument("--input-slices", type=int, default=ModelConfig.input_slices, metavar="N",
                     help="group level: slices per session fed to the model (default %(default)s)")
    mod.add_argument("--student", choices=("paper", "small"), default=ModelConfig.student,
                     help="group level: student layout; 'paper' continues the teacher without PET (default %(default)s)")
    mod.add_argument("--saliency", nargs="+", choices=("gradcam", "gradient", "none"), default=list(InferConfig.saliency),
                     help="participant level: saliency maps to write, or 'none' (default: %(default)s)")
    mod.add_argument("--no-native-saliency", action="store_true",
                     help="participant level: write saliency in template space only, not on the native T1w grid")
    mod.add_argument("--no-cpu-bf16", action="store_true",
                     help="participant level: full float32 on the CPU even where it has native bf16")

    trn = p.add_argument_group("group-level training")
    trn.add_argument("--folds", type=int, default=TrainConfig.folds, help="cross-validation folds (default %(default)s)")
    trn.add_argument("--negatives", choices=("random", "hard"), default=TrainConfig.negatives,
                     help="Centiloid-aware negative choice (default %(default)s)")
    trn.add_argument("--threshold-rule", choices=("f1", "youden"), default=TrainConfig.threshold_rule,
                     help="threshold chosen on validation data (default %(default)s)")
    trn.add_argument("--lr-scale", type=float, metavar="X",
                     help=f"multiply every learning rate of the method by X (default {TrainConfig.lr_scale:g}; "
                     f"--sloppy: {SLOPPY_LR_SCALE:g}; the method's rates suit the pretrained ViT-B and its epoch counts)")
    trn.add_argument("--monitor", choices=("f1", "auc"), default=TrainConfig.monitor,
                     help="validation score for early stopping and the best epoch (default %(default)s, the method's)")
    trn.add_argument("--no-augment", action="store_true",
                     help="no train-time augmentation (allows reusing the frozen blocks' output: faster on CPU)")
    trn.add_argument("--no-phase0", action="store_true", help="ablation: skip teacher classification pre-training")
    trn.add_argument("--no-triplet", action="store_true", help="ablation: skip triplet learning (phase 1)")
    trn.add_argument("--no-distill", action="store_true", help="ablation: train the student on labels only")
    trn.add_argument("--no-feature-kd", action="store_true", help="ablation: no feature-level distillation")
    trn.add_argument("--no-logit-kd", action="store_true", help="ablation: no logit-level distillation")
    for phase, default in ((0, TrainConfig.phase0_epochs), (1, TrainConfig.phase1_epochs), (2, TrainConfig.phase2_epochs)):
        trn.add_argument(f"--phase{phase}-epochs", type=int, metavar="N",
                         help=f"maximum epochs of phase {phase} (default {default}; --sloppy: {SLOPPY_EPOCHS[phase]})")
    trn.add_argument("--resume", action="store_true", help="continue an interrupted group run from its checkpoint")
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    from bids_amyloid.bids.layout import clean_label
    from bids_amyloid.bids.tracers import parse_suvr_window, parse_tracer_map

    config = Config(
        bids_dir=args.bids_dir.absolute(),
        output_dir=args.output_dir.absolute(),
        analysis_level=args.analysis_level,
        work_dir=args.work_dir.absolute() if args.work_dir else None,
        participant_labels=[clean_label(v, "sub-") for v in args.participant_label],
        session_labels=[clean_label(v, "ses-") for v in args.session_label],
        contrasts=list(dict.fromkeys(args.contrast)),
        bids_filter_file=args.bids_filter_file,
        skip_bids_validation=args.skip_bids_validation,
        nprocs=args.nprocs,
        omp_nthreads=args.omp_nthreads,
        mem_gb=args.mem,
        device=args.device,
        seed=args.random_seed,
        sloppy=args.sloppy,
        overwrite=args.overwrite,
        model_path=args.model.absolute() if args.model else None,
        verbose=args.verbose,
    )
    config.labels = LabelConfig(args.centiloid_column, args.centiloid_threshold, args.label_column,
                                args.labels_file.absolute() if args.labels_file else None)
    config.pet_tracer_map = parse_tracer_map(args.pet_tracer)
    config.mri_pet_max_days = args.mri_pet_max_days
    config.preprocess.registration = args.registration
    config.preprocess.suvr_window = parse_suvr_window(args.suvr_window)
    config.preprocess.realign_frames = not args.no_frame_realign
    config.model.backbone = "tiny" if args.sloppy else args.backbone
    if args.sloppy:  # test cohorts are 2 mm: relax the method's <= 1.5 mm QC rule
        config.preprocess.max_voxel_mm = 2.5
        config.preprocess.max_voxel_thick_mm = 8.5
    config.model.backbone_weights = args.backbone_weights
    config.model.input_slices, config.model.student = args.input_slices, args.student
    config.infer = InferConfig(saliency=tuple(m for m in dict.fromkeys(args.saliency) if m != "none"),
                               native_saliency=not args.no_native_saliency, cpu_bf16=not args.no_cpu_bf16)
    t = config.train
    t.folds, t.negatives, t.threshold_rule, t.resume = args.folds, args.negatives, args.threshold_rule, args.resume
    t.phase0, t.triplet, t.distill = not args.no_phase0, not args.no_triplet, not args.no_distill
    t.feature_kd, t.logit_kd = not args.no_feature_kd, not args.no_logit_kd
    t.monitor, t.augment = args.monitor, not args.no_augment
    if args.lr_scale is not None or args.sloppy:
        t.lr_scale = args.lr_scale if args.lr_scale is not None else SLOPPY_LR_SCALE
    for phase in range(3):
        chosen = getattr(args, f"phase{phase}_epochs")
        if chosen is None and args.sloppy:
            chosen = SLOPPY_EPOCHS[phase]
        if chosen is not None:
            setattr(t, f"phase{phase}_epochs", chosen)
    return config.validate()


def check_paths(config: Config) -> None:
    """Guards that protect the input dataset and catch unwritable outputs early."""
    from bids_amyloid.bids.layout import check_bids_root

    check_bids_root(config.bids_dir)
    bids = config.bids_dir.resolve()
    out = config.output_dir.resolve()
    work = config.resolved_work_dir.resolve()
    if out == bids or bids in out.parents:
        raise UsageError(f"OUTPUT_DIR {config.output_dir} is (inside) BIDS_DIR {config.bids_dir}; the input is read-only")
    if work == bids or bids in work.parents:
        raise UsageError(f"work dir {work} is inside BIDS_DIR {config.bids_dir}; the input is read-only")
    for folder, what in ((out, "OUTPUT_DIR"), (work, "work dir")):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {what} {folder}: {exc.strerror}") from exc
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"{what} {folder} is not writable")


def setup_logging(verbose: int) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("bids", "bidsschematools", "matplotlib", "PIL", "nibabel", "urllib3", "filelock", "timm", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run(config: Config) -> int:
    check_paths(config)
    log.info("bids_amyloid %s, %s level, seed %d%s", __version__, config.analysis_level, config.seed,
             " (SLOPPY: TESTING ONLY)" if config.sloppy else "")
    log.debug("configuration: %s", config.to_dict())
    if config.analysis_level == "participant":
        from bids_amyloid.workflows.participant import run_participant

        return run_participant(config)
    from bids_amyloid.workflows.group import run_group

    return run_group(config)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["fetch-weights"]:
        return fetch_weights_main(argv[1:])
    if argv[:1] == ["--bids-exec-spec"]:
        from importlib import resources

        sys.stdout.write(resources.files("bids_amyloid").joinpath("data/boutiques.json").read_text())
        return 0
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return run(config_from_args(args))
    except BidsAmyloidError as exc:
        log.error("%s", exc)
        if args.verbose:
            traceback.print_exc()
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as exc:  # a bug: say so, keep the traceback behind -v
        log.error("unexpected error: %s: %s (re-run with -v for the traceback and please report it)",
                  type(exc).__name__, exc)
        if args.verbose:
            traceback.print_exc()
        return 1


def fetch_weights_main(argv: list[str]) -> int:
    parser = _Parser(prog="bids_amyloid fetch-weights",
                     description="Download the BiomedCLIP vision tower once (the only command that uses the network) "
                     "and store it as safetensors with a checksum manifest.")
    parser.add_argument("dest", type=Path, help="destination folder (e.g. /opt/bids_amyloid/weights/biomedclip)")
    parser.add_argument("--tiny", action="store_true",
                        help="write a random-weight tiny backbone instead (TESTING ONLY, no network)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --tiny random weights")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from bids_amyloid.models.weights import convert_checkpoint, fetch_weights, write_random_checkpoint

    try:
        if args.tiny:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                checkpoint = write_random_checkpoint(Path(tmp) / "open_clip_model.bin", "tiny", seed=args.seed)
                path = convert_checkpoint(checkpoint, args.dest, "tiny")
        else:
            path = fetch_weights(args.dest)
    except BidsAmyloidError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except OSError as exc:
        log.error("could not fetch the BiomedCLIP weights: %s", exc)
        return 74
    log.info("weights written to %s", path)
    return 0
