"""Exceptions that carry the exit code the CLI returns (BIDS-Apps execution-spec draft).

| code | meaning                                   |
|------|-------------------------------------------|
| 0    | success                                   |
| 1    | unexpected failure (a bug: please report) |
| 16   | input failed BIDS validation              |
| 17   | unknown analysis level                    |
| 18   | filters / labels selected nothing         |
| 64   | usage error (bad option or combination)   |
| 65   | bad data (unreadable or invalid image, bad label values) |
| 66   | valid BIDS but required files missing     |
| 73   | cannot create or write the output         |
| 74   | I/O error while reading                   |
"""
from __future__ import annotations

EXIT_CODES = {
    0: "success",
    1: "unexpected failure",
    16: "input dataset failed BIDS validation",
    17: "unknown analysis level",
    18: "filters or labels selected nothing",
    64: "usage error",
    65: "bad input data",
    66: "required input files missing",
    73: "cannot create output",
    74: "I/O error",
}


class BidsAmyloidError(Exception):
    """Base class: a user-facing error with a message and an exit code."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(BidsAmyloidError):
    exit_code = 64


class BidsValidationError(BidsAmyloidError):
    exit_code = 16


class NothingSelectedError(BidsAmyloidError):
    exit_code = 18


class DataError(BidsAmyloidError):
    exit_code = 65


class MissingInputError(BidsAmyloidError):
    exit_code = 66


class OutputError(BidsAmyloidError):
    exit_code = 73


class InputIOError(BidsAmyloidError):
    exit_code = 74



def read_option_json(path, option: str):
    """The JSON in a file an option names; UsageError (64) naming the option and the file otherwise."""
    import json
    from pathlib import Path

    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot read it ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise UsageError(f"{option} {path}: not valid JSON ({exc})") from exc
