"""QC figures (SVG, nilearn, matplotlib Agg backend), written atomically by the caller's path.

* ``desc-reg_<contrast>.svg``: the contrast in template space with the template's white-matter
  (red) and brain (yellow) outlines;
* ``desc-brainmask_T1w.svg``: the native T1w with the brain-mask outline;
* ``trc-<T>_desc-petreg_pet.svg``: the template-space SUVR over the template-space T1w, with the
  reference-region outline (cyan).
"""
from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np

log = logging.getLogger("bids_amyloid.preprocess")


def _plotting():
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from nilearn import plotting

    return plt, plotting


def _save(display, plt, path: Path) -> None:
    display.savefig(str(path))
    display.close()
    plt.close("all")


def registration_figure(moving_template: nib.Nifti1Image, template_mask: nib.Nifti1Image, path: Path, title: str,
                        template_wm: nib.Nifti1Image | None = None) -> None:
    """Image resampled into the template, with the template's white-matter (red) and brain (yellow)
    outlines: misregistration shows as outlines off the subject's anatomy."""
    plt, plotting = _plotting()
    display = plotting.plot_anat(moving_template, display_mode="ortho", cut_coords=(0, -18, 10), title=title,
                                 dim=0, vmax=_robust_max(moving_template), draw_cross=False, annotate=True)
    if template_wm is not None:
        display.add_contours(template_wm, levels=[0.5], colors="r", linewidths=0.6)
    display.add_contours(template_mask, levels=[0.5], colors="y", linewidths=0.6)
    _save(display, plt, path)


def _robust_max(img: nib.Nifti1Image) -> float:
    data = np.asarray(img.dataobj, dtype=np.float32)
    values = data[data > 0]
    return float(np.percentile(values, 99.5)) if values.size else 1.0


def brainmask_figure(native: nib.Nifti1Image, mask: nib.Nifti1Image, path: Path, title: str) -> None:
    """Native image with the brain-mask outline, cut at the mask's centre of mass."""
    plt, plotting = _plotting()
    data = np.asarray(mask.dataobj) > 0
    centre = np.argwhere(data).mean(axis=0) if data.any() else np.array(data.shape) / 2
    world = nib.affines.apply_affine(mask.affine, centre)
    display = plotting.plot_anat(native, display_mode="ortho", cut_coords=tuple(world), title=title, dim=0,
                                 vmax=_robust_max(native), draw_cross=False)
    display.add_contours(mask, levels=[0.5], colors="r", linewidths=0.8)
    _save(display, plt, path)


def pet_figure(suvr: nib.Nifti1Image, t1_template: nib.Nifti1Image, reference: nib.Nifti1Image, path: Path,
               title: str) -> None:
    """SUVR over the T1w (template space) with the reference-region outline."""
    plt, plotting = _plotting()
    display = plotting.plot_img(suvr, bg_img=t1_template, display_mode="ortho", cut_coords=(0, -60, -20),
                                title=title, cmap="hot", transparency=0.6, vmin=0.0, vmax=2.5, colorbar=True,
                                threshold=0.3, draw_cross=False, black_bg=True)
    display.add_contours(reference, levels=[0.5], colors="c", linewidths=0.8)
    _save(display, plt, path)
