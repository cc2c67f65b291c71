"""Report figures (matplotlib, Agg): saliency overlays, ROC with bootstrap bands, calibration,
confusion matrix, prediction strips. Every function returns an image as a ``data:`` URI, so
reports embed it without external files. SVG text is drawn as paths (no font needed).
"""
from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "font.size": 9, "svg.hashsalt": "bids_amyloid",
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def data_uri(fig, fmt: str = "svg", dpi: int = 110) -> str:
    """Render and close ``fig``; return ``data:image/<fmt>;base64,...`` (deterministic metadata)."""
    plt = _plt()
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    fig.savefig(buffer, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)
    plt.close(fig)
    mime = "svg+xml" if fmt == "svg" else fmt
    return f"data:image/{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def file_uri(path: Path) -> str:
    """A figure file (SVG/PNG from preprocessing QC) as a data URI."""
    suffix = Path(path).suffix.lower()
    mime = {".svg": "svg+xml", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}.get(suffix, "octet-stream")
    return f"data:image/{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode('ascii')}"


# --------------------------------------------------------------------------------------------
# saliency


def saliency_overlay(saliency: Path, background: Path | None, title: str, threshold: float = 0.1) -> str:
    """The map (maximum 1) over ``background`` in three planes through its centre of mass; PNG data URI."""
    import nibabel as nib
    from nilearn import plotting

    plt = _plt()
    img = nib.load(str(saliency))
    data = np.asarray(img.dataobj, dtype=np.float32)
    cut = None
    if data.max() > 0:  # cut through the centre of mass of the visible part
        from scipy import ndimage

        centre = ndimage.center_of_mass(np.where(data >= threshold, data, 0.0))
        cut = tuple(float(v) for v in nib.affines.apply_affine(img.affine, centre))
    fig = plt.figure(figsize=(7.2, 2.6))
    kwargs = {"bg_img": str(background)} if background is not None else {}  # default: nilearn's MNI152 2009
    plotting.plot_stat_map(img, display_mode="ortho", cut_coords=cut, threshold=threshold, vmax=1.0,
                           cmap="hot", colorbar=True, title=title, figure=fig, annotate=True,
                           draw_cross=False, black_bg=True, **kwargs)
    return data_uri(fig, "png", dpi=100)


# --------------------------------------------------------------------------------------------
# classification curves


def roc_band(y: Sequence[int], p: Sequence[float], *, n_boot: int = 500, seed: int = 0,
             grid: int = 101) -> dict[str, np.ndarray | float]:
    """ROC curve and a percentile bootstrap band (95 %) of the TPR on a fixed FPR grid."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    fpr, tpr, _ = roc_curve(y, p)
    fgrid = np.linspace(0, 1, grid)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, y.size, y.size)
        if y[idx].min() == y[idx].max():
            continue
        bf, bt, _ = roc_curve(y[idx], p[idx])
        boots.append(np.interp(fgrid, bf, bt))
    low, high = (np.percentile(boots, [2.5, 97.5], axis=0) if boots else (np.full(grid, np.nan),) * 2)
    return {"fpr": fpr, "tpr": tpr, "grid": fgrid, "low": low, "high": high, "auc": float(roc_auc_score(y, p))}


def roc_figure(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], *, n_boot: int = 500,
               seed: int = 0, auc_ci: Mapping[str, tuple[float, float, float]] | None = None) -> str:
    """One ROC curve per entry (name -> labels, probabilities) with its bootstrap band; the legend
    gives each entry's AUC [95 % CI] from ``auc_ci`` (the metrics table: one source of those numbers)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], ls=":", color="0.6", lw=1)
    for i, (name, (y, p)) in enumerate(curves.items()):
        color = PALETTE[i % len(PALETTE)]
        if len(set(np.asarray(y).tolist())) < 2:
            continue
        band = roc_band(y, p, n_boot=n_boot, seed=seed)
        auc, low, high = (auc_ci or {}).get(name, (band["auc"], float("nan"), float("nan")))
        ax.fill_between(band["grid"], band["low"], band["high"], color=color, alpha=0.18, lw=0)
        ax.step(band["fpr"], band["tpr"], where="post", color=color, lw=1.8,
                label=f"{name}: AUC {auc:.2f} [{low:.2f}, {high:.2f}]")
    ax.set(xlabel="1 - specificity (false positive rate)", ylabel="sensitivity (true positive rate)",
           xlim=(0, 1), ylim=(0, 1.01), title="Out-of-fold ROC (95 % bootstrap band)")
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    ax.set_aspect("equal")
    return data_uri(fig)


def calibration_figure(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], bins: int = 10,
                       title: str = "Calibration (out of fold)") -> str:
    """Reliability diagram: observed positive fraction per equal-width probability bin."""
    plt = _plt()
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.6, 5.0), height_ratios=(3, 1), sharex=True)
    ax.plot([0, 1], [0, 1], ls=":", color="0.6", lw=1)
    edges = np.linspace(0, 1, bins + 1)
    for i, (name, (y, p)) in enumerate(curves.items()):
        y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
        which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
        centres, observed, counts = [], [], np.bincount(which, minlength=bins)
        for b in range(bins):
            if counts[b]:
                centres.append(p[which == b].mean())
                observed.append(y[which == b].mean())
        color = PALETTE[i % len(PALETTE)]
        ax.plot(centres, observed, marker="o", ms=4, color=color, lw=1.5, label=name)
        hist.bar(edges[:-1] + (i + 0.5) / (len(curves) + 1) / bins, counts, width=1 / bins / (len(curves) + 1),
                 color=color, align="center")
    ax.set(ylabel="observed positive fraction", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    hist.set(xlabel="predicted probability", ylabel="sessions")
    return data_uri(fig)


def confusion_figure(y: Sequence[int], predicted: Sequence[int], title: str) -> str:
    """2 x 2 confusion matrix (rows: truth, columns: prediction) with counts and row shares."""
    plt = _plt()
    y, predicted = np.asarray(y, dtype=int), np.asarray(predicted, dtype=int)
    matrix = np.array([[np.sum((y == t) & (predicted == q)) for q in (0, 1)] for t in (0, 1)])
    fig, ax = plt.subplots(figsize=(3.2, 2.9))
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (t, q), n in np.ndenumerate(matrix):
        ax.text(q, t, f"{n}\n({shares[t, q]:.0%})", ha="center", va="center",
                color="white" if shares[t, q] > 0.6 else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["negative", "positive"], yticklabels=["negative", "positive"],
           xlabel="predicted", ylabel="amyloid status (PET)", title=title)
    ax.spines[:].set_visible(False)
    return data_uri(fig)


def _finite(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def prediction_strip(rows: Sequence[Mapping[str, object]]) -> str:
    """Probability (dot), fold range (bar) and threshold (tick) per session and contrast."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 0.5 + 0.38 * len(rows)))
    for i, row in enumerate(rows):
        y = len(rows) - 1 - i
        p, lo, hi, t = (float(row[k]) for k in ("probability", "fold_min", "fold_max", "threshold"))
        color = PALETTE[1] if row["label"] == "positive" else PALETTE[0]
        out, inside = (_finite(row.get(k)) for k in ("rule_out_threshold", "rule_in_threshold"))
        if out is not None and inside is not None:  # the zones behind the row: rule-out left, rule-in right
            ax.fill_between([0, min(out, inside)], y - 0.4, y + 0.4, color=PALETTE[0], alpha=0.1, lw=0)
            ax.fill_between([inside, 1], y - 0.4, y + 0.4, color=PALETTE[1], alpha=0.1, lw=0)
        ax.plot([lo, hi], [y, y], color=color, lw=4, alpha=0.35, solid_capstyle="round")
        ax.plot([t, t], [y - 0.3, y + 0.3], color="0.25", lw=1.2)
        ax.plot([p], [y], "o", color=color, ms=7)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['session_id']} {r['contrast']}" for r in reversed(rows)])
    ax.set(xlim=(0, 1), ylim=(-0.7, len(rows) - 0.3), xlabel="probability of amyloid positivity "
           "(dot: ensemble, bar: fold range, tick: threshold; shaded: rule-out / rule-in zones)")
    ax.grid(axis="x", color="0.9")
    return data_uri(fig)
