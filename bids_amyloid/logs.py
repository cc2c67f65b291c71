"""Logging of every process (the CLI and its worker processes)."""
from __future__ import annotations

import logging
import sys

QUIET = ("bids", "bidsschematools", "matplotlib", "PIL", "nibabel", "urllib3", "filelock", "timm", "fsspec")
"""Third-party loggers kept at WARNING (their INFO lines are noise for users)."""


def setup_logging(verbose: int) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
