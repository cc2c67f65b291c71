"""The BIDS validator on the real-data layouts: real OASIS-3 / Clinica / DLBS trees are not valid
current BIDS, so errors are expected, but only those their quirks explain (anything else would be
a generator bug). The default layout must stay error-free (test_bidsfiles.py)."""
from __future__ import annotations

import collections
import json
import shutil
import subprocess

import pytest

# error code -> the real-data quirk that causes it
EXPECTED = {
    "oasis": {
        "ENTITY_NOT_IN_RULE": "acq- on PET (the download names the tracer there); sess- in one name",
        "INVALID_LOCATION": "the sess- file does not name its ses- folder",
        "FILENAME_MISMATCH": "the sess- file",
        "NOT_INCLUDED": "a dataset_description.json in every session folder",
        "EXTENSION_MISMATCH": "the _pet.tsv frame tables",
        "SIDECAR_KEY_REQUIRED": "draft sidecars (no TracerName ...), no TimeZero, no frame timing",
        "JSON_SCHEMA_VALIDATION_ERROR": '"n/a" strings in numeric fields',
        "NIFTI_HEADER_UNREADABLE": "the HTML error page saved as .nii.gz",
    },
    "clinica": {"SIDECAR_KEY_REQUIRED": "3-D PET without any JSON"},
    "openneuro": {"PET_FRAME_CONSISTENCY_FRAME_DURATION": "one volume, two frames in the JSON",
                  "PET_FRAME_CONSISTENCY_FRAME_TIMES_START": "one volume, two frames in the JSON"},
}
# the quirks that must show up in the report
MUST = {"oasis": {"ENTITY_NOT_IN_RULE", "NOT_INCLUDED", "NIFTI_HEADER_UNREADABLE"},
        "clinica": {"SIDECAR_KEY_REQUIRED"},
        "openneuro": {"PET_FRAME_CONSISTENCY_FRAME_DURATION"}}


def _errors(root) -> collections.Counter:
    exe = shutil.which("bids-validator-deno")
    if exe is None:
        pytest.skip("bids-validator-deno is not installed")
    proc = subprocess.run([exe, str(root), "--format", "json"], capture_output=True, text=True,
                          timeout=180)
    report = json.loads(proc.stdout)
    return collections.Counter(i["code"] for i in report["issues"]["issues"]
                               if i["severity"] == "error")


@pytest.mark.parametrize("name", ["oasis", "clinica", "openneuro"])
def test_validator_errors_are_the_layouts_quirks(request, name):
    errors = _errors(request.getfixturevalue(name).root)
    print(f"{name}: {dict(errors)}")  # the report (pytest -s)
    unexpected = set(errors) - set(EXPECTED[name])
    assert not unexpected, {k: errors[k] for k in unexpected}
    assert MUST[name] <= set(errors)
