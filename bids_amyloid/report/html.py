"""Small HTML building blocks for self-contained reports (no scripts, fonts, links or files:
CSS is inline, images are data URIs). The page frame is ``templates/page.html``
(``string.Template``)."""
from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from bids_amyloid import __version__
from bids_amyloid.bids.io import atomic_write_text

DISCLAIMER = ("Research software. bids_amyloid estimates amyloid-beta positivity from MRI alone; the published "
              "method reaches an AUC of about 0.7, so many individual predictions are wrong. It is not a medical "
              "device and must not be used for diagnosis or treatment decisions.")


def esc(value: Any) -> str:
    return html.escape("n/a" if value is None else str(value), quote=True)


def page(title: str, subtitle: str, nav: Sequence[tuple[str, str]], body: str) -> str:
    """The full document; ``nav`` = (label, section anchor) pairs (in-page links only)."""
    frame = Template(resources.files("bids_amyloid.report").joinpath("templates/page.html").read_text())
    return frame.substitute(title=esc(title), subtitle=esc(subtitle), version=esc(__version__),
                            nav="".join(f'<a href="#{esc(a)}">{esc(n)}</a>' for n, a in nav), body=body)


def write_page(path: Path, text: str) -> Path:
    atomic_write_text(path, text)
    return path


def section(title: str, body: str, anchor: str | None = None) -> str:
    ident = f' id="{esc(anchor)}"' if anchor else ""
    return f"<section{ident}><h2>{esc(title)}</h2>\n{body}\n</section>"


def figure(uri: str, caption: str, alt: str | None = None) -> str:
    return (f'<figure><img src="{uri}" alt="{esc(alt or caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], headers: Mapping[str, str] | None = None,
          numeric: Sequence[str] = (), digits: int = 3) -> str:
    headers = headers or {}
    head = "".join(f"<th>{esc(headers.get(c, c))}</th>" for c in columns)
    out = [f"<table><thead><tr>{head}</tr></thead><tbody>"]
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            css = []
            if c in numeric:
                css.append("num")
                value = _number(value, digits)
            if c == "label" and value in ("positive", "negative"):
                css.append(str(value))
            cls = f' class="{" ".join(css)}"' if css else ""
            cells.append(f"<td{cls}>{esc(value)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _number(value: Any, digits: int) -> Any:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    if number != number:
        return "n/a"
    if isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        return str(int(number))
    return f"{number:.{digits}f}"


def json_details(summary: str, payload: Any) -> str:
    text = json.dumps(payload, indent=2, sort_keys=True, default=str)
    return f"<details><summary>{esc(summary)}</summary><pre>{esc(text)}</pre></details>"


def banner(text: str) -> str:
    return f'<div class="banner">{esc(text)}</div>'


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'
