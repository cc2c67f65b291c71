"""Rendering reports in headless Chromium: no console errors, every figure decoded, nothing external."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path


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


def static_checks(text: str) -> None:
    assert "<script" not in text.lower()
    assert not re.search(r'(src|href)="(?!data:|#)', text), "external reference in a report"
    assert "@import" not in text and "url(http" not in text
    for uri in re.findall(r'src="data:image/(png|svg\+xml);base64,([^"]+)"', text):
        data = base64.b64decode(uri[1])
        assert data.startswith(b"\x89PNG") if uri[0] == "png" else b"<svg" in data[:2000]
