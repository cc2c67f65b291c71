"""Reports: self-contained HTML, rendered by headless Chromium without console errors, every
figure decoded. Skipped only when Chromium is not installed (CI installs Debian ``chromium``)."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bids_amyloid.report import figures
from bids_amyloid.report.group import write_group_report
from bids_amyloid.report.participant import entities, write_participant_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0",
         "--allow-file-access-from-files", "--virtual-time-budget=15000"]

HARNESS = """<!DOCTYPE html><html><body><iframe id="r" src="{src}" style="width:1200px;height:900px"></iframe>
<script>
document.getElementById('r').addEventListener('load', function () {{
  var doc = this.contentDocument, imgs = Array.from(doc.images);
  var ok = function (i) {{ return i.complete && i.naturalWidth > 0; }};
  var bad = imgs.filter(function (i) {{ return !ok(i); }}).map(function (i) {{ return i.alt; }});
  var refs = Array.from(doc.querySelectorAll('[src],[href]')).map(function (e) {{
    return e.getAttribute('src') || e.getAttribute('href'); }});
  var out = document.createElement('pre'); out.id = 'result';
  out.textContent = JSON.stringify({{images: imgs.length, broken: bad, svg: doc.querySelectorAll('svg').length,
    external: refs.filter(function (u) {{ return !/^(data:|#)/.test(u); }})}});
  document.body.appendChild(out);
}});
</script></body></html>"""


def render(page: Path, tmp_path: Path) -> dict:
    """Load ``page`` in Chromium (inside a harness that inspects it); screenshot it beside itself."""
    harness = tmp_path / f"harness-{page.stem}.html"
    harness.write_text(HARNESS.format(src=page.resolve().as_uri()))
    run = subprocess.run([CHROMIUM, *FLAGS, "--dump-dom", harness.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    for marker in ("Uncaught", "ERR_", "Refused to", "Failed to load"):
        assert marker not in run.stderr, run.stderr[-2000:]
    found = re.search(r'<pre id="result">(.*?)</pre>', run.stdout, re.S)
    assert found, run.stdout[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    shot = page.with_suffix(".png")
    subprocess.run([CHROMIUM, *FLAGS, "--window-size=1280,2600", f"--screenshot={shot}", page.resolve().as_uri()],
                   capture_output=True, text=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000
    return result


def _static_checks(text: str) -> None:
    assert "<script" not in text.lower()
    assert not re.search(r'(src|href)="(?!data:|#)', text), "external reference in a report"
    assert "@import" not in text and "url(http" not in text
    for uri in re.findall(r'src="data:image/(png|svg\+xml);base64,([^"]+)"', text):
        data = base64.b64decode(uri[1])
        assert data.startswith(b"\x89PNG") if uri[0] == "png" else b"<svg" in data[:2000]


def test_figures_are_data_uris():
    y, p = [0, 1, 0, 1, 1, 0, 0, 1], [0.1, 0.8, 0.3, 0.6, 0.9, 0.4, 0.2, 0.55]
    for uri in (figures.roc_figure({"T1w student": (y, p)}, n_boot=20), figures.calibration_figure({"a": (y, p)}),
                figures.confusion_figure(y, [int(v >= 0.5) for v in p], "T1w")):
        assert uri.startswith("data:image/svg+xml;base64,")
        assert b"<svg" in base64.b64decode(uri.split(",", 1)[1])
    band = figures.roc_band(y, p, n_boot=50)
    assert band["auc"] == pytest.approx(1.0) and (band["low"] <= band["high"] + 1e-9).all()


def test_entities():
    assert entities("sub-01_ses-02_space-X_desc-gradcamT1w_saliency.nii.gz") == {
        "sub": "01", "ses": "02", "space": "X", "desc": "gradcamT1w", "suffix": "saliency"}


def test_participant_report(participant_output, tmp_path):
    config = participant_output
    page = write_participant_report("sub-01", config)
    assert page == config.output_dir / "sub-01.html"
    text = page.read_text()
    _static_checks(text)
    for expected in ("TESTING ONLY", "Session 01", "Session 02", "ses-02", "Grad-CAM", "Input gradient",
                     "Preprocessing quality control", "Provenance", "Precuneus"):
        assert expected in text, expected
    assert len(list((config.output_dir / "sub-01" / "figures").glob("*_saliency.png"))) == 4  # cached overlays
    if CHROMIUM is None:
        pytest.skip("chromium not installed")
    result = render(page, tmp_path)
    # strip + 2 native overlays (ses-01) + 2 template overlays (ses-02) + 1 QC figure
    assert result["images"] == 6 and result["broken"] == [] and result["external"] == []


def test_participant_report_without_predictions(tmp_path):
    import brainfixtures as bf

    out = tmp_path / "out"
    (out / "sub-07" / "ses-01" / "anat").mkdir(parents=True)
    page = write_participant_report("07", bf.infer_config(out, tmp_path))
    text = page.read_text()
    assert "No predictions" in text and "Session 01" in text
    _static_checks(text)


def test_group_report(group_output, tmp_path):
    page = write_group_report(group_output)
    assert page == group_output.output_dir / "group" / "group_report.html"
    text = page.read_text()
    _static_checks(text)
    for expected in ("TESTING ONLY", "T1w student", "T1w teacher", "Confusion matrices", "Ablations",
                     "no distillation", "Per fold"):
        assert expected in text, expected
    if CHROMIUM is None:
        pytest.skip("chromium not installed")
    result = render(page, tmp_path)
    # ROC + calibration + one confusion matrix per (contrast, model)
    assert result["images"] == 4 and result["broken"] == [] and result["external"] == []


def test_group_report_before_training(tmp_path):
    import brainfixtures as bf

    page = write_group_report(bf.infer_config(tmp_path / "out", tmp_path))
    assert "not found" in page.read_text()
