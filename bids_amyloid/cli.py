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
from bids_amyloid.config import Config
from bids_amyloid.errors import EXIT_CODES, BidsAmyloidError, OutputError, UsageError
from bids_amyloid.logs import setup_logging

log = logging.getLogger("bids_amyloid")

class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; the BIDS-Apps convention is 64."""

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(64, f"{self.prog}: error: {message}\n")


def _exit_code_epilog() -> str:
    return "exit codes:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES.items())


OTHER_COMMANDS = """other commands:
  bids_amyloid fetch-weights DIR [--tiny]   download the BiomedCLIP vision tower once (the only network use)
  bids_amyloid --bids-exec-spec             print the Boutiques descriptor of this app"""


class ExecSpecAction(argparse.Action):
    """--bids-exec-spec: print the packaged Boutiques descriptor and exit (like --version)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib import resources

        sys.stdout.write(resources.files("bids_amyloid").joinpath("data/boutiques.json").read_text())
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    """The command line: the positionals, a few run options, and one option per setting of Config."""
    from bids_amyloid.config.options import add_options

    p = _Parser(
        prog="bids_amyloid",
        description="Amyloid-beta positivity from MRI alone (BIDS-App). 'participant' preprocesses MRI/PET and, "
        "with --model, predicts; 'group' trains the PET+MRI teacher and the MRI-only student with cross-validation.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=OTHER_COMMANDS + "\n\n" + _exit_code_epilog(),
    )
    p.add_argument("bids_dir", type=Path, help="input BIDS dataset (read-only)")
    p.add_argument("output_dir", type=Path, help="output derivatives folder")
    p.add_argument("analysis_level", help="'participant' or 'group'")
    p.add_argument("--version", action="version", version=f"bids_amyloid {__version__}")
    p.add_argument("--bids-exec-spec", action=ExecSpecAction, nargs=0, help="print the Boutiques descriptor and exit")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging; tracebacks on errors")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="start from a saved run configuration (OUTPUT_DIR/logs/*_config.json); options given here "
                   "override it")
    p.set_defaults(settings=add_options(p, Config))
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    """Config: the --config file (or the defaults), the positionals, then every option given."""
    from bids_amyloid.config import load_config_file
    from bids_amyloid.config.options import apply_options

    if args.config is not None:
        config = load_config_file(args.config)
        config.bids_dir, config.output_dir, config.analysis_level = args.bids_dir, args.output_dir, args.analysis_level
    else:
        config = Config(bids_dir=args.bids_dir, output_dir=args.output_dir, analysis_level=args.analysis_level)
    config.verbose = args.verbose
    given = apply_options(config, args, args.settings)
    if ("sloppy",) in given and config.sloppy:
        config.apply_sloppy(given)
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
    parser.add_argument("--revision", help="hub commit or branch to download (default: the latest; the commit "
                        "used is recorded in the weights folder)")
    parser.add_argument("--checkpoint-sha256", metavar="HEX", help="accept a checkpoint with this sha256 instead "
                        "of the pinned one (a changed file is refused otherwise)")
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
            from bids_amyloid.models.weights import HF_CHECKPOINT_SHA256

            path = fetch_weights(args.dest, revision=args.revision,
                                 checkpoint_sha256=args.checkpoint_sha256 or HF_CHECKPOINT_SHA256)
    except BidsAmyloidError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except OSError as exc:
        log.error("could not fetch the BiomedCLIP weights: %s", exc)
        return 74
    log.info("weights written to %s", path)
    return 0
