"""MRI stages of one MRI session: N4 -> skull strip + template registration -> contrasts -> slices -> QC.

Run once per (subject, MRI session) under the caller's lock; each stage is skipped when its
outputs are complete (see :meth:`Writer.complete`). The anchor is the T1w when the session has
one, else the first available contrast; other contrasts are registered rigidly to the anchor and
mapped to the template through the composed transforms (one resampling).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from bids_amyloid.config import CONTRASTS, TEMPLATE_SPACE
from bids_amyloid.preprocess import bias, qc, register, skullstrip, slices, template
from bids_amyloid.preprocess.images import load_image, max_voxel_for, nifti_like, to_ants, to_nifti
from bids_amyloid.preprocess.outputs import SessionPaths, Writer, sidecar_path

log = logging.getLogger("bids_amyloid.preprocess")


@dataclass
class AnatResult:
    anchor: str
    native_preproc: Path
    brain_mask: Path
    template_mask: Path
    xfm_to_template: Path
    xfm_from_template: Path
    template_preproc: dict[str, Path] = field(default_factory=dict)
    xfm_to_anchor: dict[str, Path] = field(default_factory=dict)
    slices: dict[str, Path] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


def anchor_contrast(anat: dict[str, Path]) -> str:
    return "T1w" if "T1w" in anat else next(c for c in CONTRASTS if c in anat)


def contrasts_to_process(anat: dict[str, Path], requested: list[str]) -> list[str]:
    """The anchor first, then the requested contrasts the session has, in CONTRASTS order."""
    anchor = anchor_contrast(anat)
    return [anchor] + [c for c in CONTRASTS if c != anchor and c in anat and c in requested]


class ImageCache:
    """ANTs images read once per call (stages reuse the previous stage's files)."""

    def __init__(self):
        self._images: dict[Path, object] = {}

    def get(self, path: Path):
        path = Path(path)
        if path not in self._images:
            self._images[path] = to_ants(nib.load(str(path)))
        return self._images[path]

    def put(self, path: Path, image) -> None:
        self._images[Path(path)] = image


def process_anat(anat: dict[str, Path], config, paths: SessionPaths, writer: Writer, cache: ImageCache,
                 workdir: Path, step: Callable[[str], None]) -> AnatResult:
    pcfg, sloppy = config.preprocess, config.sloppy
    anchor = paths.anchor
    raw_anchor = Path(anat[anchor])
    res = AnatResult(anchor, paths.native_preproc(), paths.brain_mask(), paths.template_mask(),
                     paths.xfm_to_template(), paths.xfm_from_template())
    grid = to_ants(template.template_nifti(1))
    tpl_affine = template.template_nifti(1).affine

    def run(stage: str, outputs: list[Path], inputs: list[Path], raw: list[Path]) -> bool:
        step(stage)
        outputs = outputs + [sidecar_path(p) for p in outputs if p.suffix != ".svg"]
        if writer.complete(outputs, inputs, raw):
            res.reused.append(stage)
            return False
        res.computed.append(stage)
        return True

    # 1. load + N4 ---------------------------------------------------------------------------
    if run(f"n4-{anchor}", [res.native_preproc], [], [raw_anchor]):
        loaded = load_image(raw_anchor, anchor, max_voxel_for(anchor, pcfg))
        head = bias.n4(to_ants(loaded.image), pcfg, sloppy=sloppy)
        writer.nifti(res.native_preproc, to_nifti(head), writer.sidecar(
            [raw_anchor], [raw_anchor], Description=f"{anchor} bias-corrected (N4), reoriented to RAS",
            SkullStripped=False, SpatialReference=writer.uri(raw_anchor), OriginalOrientation=loaded.orientation,
            BiasCorrection=bias.n4_settings(pcfg, sloppy)))
        cache.put(res.native_preproc, head)

    # 2. template registration + skull strip ----------------------------------------------------
    xfm_meta = dict(Registration=register.settings(pcfg, sloppy))
    if run("register", [res.xfm_to_template, res.xfm_from_template, res.brain_mask], [res.native_preproc],
           [raw_anchor]):
        head = cache.get(res.native_preproc)
        reg = register.register_to_template(head, pcfg, workdir, sloppy=sloppy, name=anchor)
        src = [res.native_preproc]
        writer.copy(reg.forward[0], res.xfm_to_template, writer.sidecar(
            src, [raw_anchor], FromSpace=anchor, ToSpace=TEMPLATE_SPACE, **xfm_meta))
        writer.copy(reg.inverse[0], res.xfm_from_template, writer.sidecar(
            src, [raw_anchor], FromSpace=TEMPLATE_SPACE, ToSpace=anchor, **xfm_meta))
        mask = skullstrip.native_brain_mask(head, register.Registration((str(res.xfm_to_template),),
                                                                       (str(res.xfm_from_template),), reg.kind))
        writer.nifti(res.brain_mask, nifti_like(mask, _affine(head), np.uint8), writer.sidecar(
            src + [res.xfm_from_template], [raw_anchor], Description=f"Brain mask of the {anchor}",
            Type="Brain", RawSources=[writer.uri(raw_anchor)], SpatialReference=writer.uri(res.native_preproc),
            SkullStripping=skullstrip.METHOD))
    reg = register.Registration((str(res.xfm_to_template),), (str(res.xfm_from_template),), pcfg.registration)

    # 3. anchor in template space + template-space mask ---------------------------------------
    if run(f"template-{anchor}", [paths.template_preproc(anchor), res.template_mask],
           [res.native_preproc, res.xfm_to_template, res.brain_mask], [raw_anchor]):
        head = cache.get(res.native_preproc)
        tmask = skullstrip.template_brain_mask(cache.get(res.brain_mask), reg)
        warped = register.apply(grid, head, reg.forward).numpy() * tmask
        common = template.space_fields(1)
        writer.nifti(res.template_mask, nifti_like(tmask, tpl_affine, np.uint8, 4), writer.sidecar(
            [res.brain_mask, res.xfm_to_template], [raw_anchor], Description="Brain mask in template space",
            Type="Brain", **common))
        writer.nifti(paths.template_preproc(anchor), nifti_like(warped, tpl_affine, np.float32, 4), writer.sidecar(
            [res.native_preproc, res.xfm_to_template, res.brain_mask], [raw_anchor],
            Description=f"{anchor} bias-corrected, skull-stripped, in template space (1 mm, linear)",
            SkullStripped=True, Registration=register.settings(pcfg, sloppy), **common))
    res.template_preproc[anchor] = paths.template_preproc(anchor)

    # 4. other contrasts: rigid to the anchor, composed into the template --------------------
    for contrast in contrasts_to_process(anat, config.contrasts)[1:]:
        raw = Path(anat[contrast])
        out_xfm, out_tpl = paths.xfm_to_anchor(contrast), paths.template_preproc(contrast)
        if run(f"register-{contrast}", [out_xfm, out_tpl],
               [res.native_preproc, res.brain_mask, res.xfm_to_template, res.template_mask], [raw]):
            loaded = load_image(raw, contrast, max_voxel_for(contrast, pcfg))
            image = bias.n4(to_ants(loaded.image), pcfg, sloppy=sloppy)
            rigid = register.register_rigid(cache.get(res.native_preproc), image, None, workdir, contrast,
                                            sloppy=sloppy)  # whole head: measured more accurate than masked
            writer.copy(rigid.forward[0], out_xfm, writer.sidecar(
                [raw, res.native_preproc], [raw], FromSpace=contrast, ToSpace=anchor, Registration="Rigid, Mattes MI"))
            tmask = np.asarray(nib.load(str(res.template_mask)).dataobj) > 0
            warped = register.apply(grid, image, reg.forward + (str(out_xfm),)).numpy() * tmask
            writer.nifti(out_tpl, nifti_like(warped, tpl_affine, np.float32, 4), writer.sidecar(
                [raw, out_xfm, res.xfm_to_template, res.template_mask], [raw],
                Description=f"{contrast} bias-corrected (N4), rigid to {anchor}, skull-stripped, in template space",
                SkullStripped=True, **template.space_fields(1), OriginalOrientation=loaded.orientation,
                BiasCorrection=bias.n4_settings(pcfg, sloppy)))
        res.xfm_to_anchor[contrast] = out_xfm
        res.template_preproc[contrast] = out_tpl

    # 5. slice tensors ------------------------------------------------------------------------
    for contrast, volume_path in res.template_preproc.items():
        out = paths.slices(contrast)
        raw = Path(anat[contrast])
        if run(f"slices-{contrast}", [out], [volume_path, res.template_mask], [raw]):
            write_mri_slices(volume_path, res.template_mask, out, raw, config, writer)
        res.slices[contrast] = out

    # 6. QC figures ---------------------------------------------------------------------------
    if pcfg.qc_figures:
        figure = paths.figure(anchor, "brainmask")
        if run("qc-brainmask", [figure], [res.brain_mask, res.native_preproc], []):
            title = f"{paths.sub} {paths.mri_ses or ''} {anchor} brain mask".replace("  ", " ")
            writer.figure(figure, lambda tmp: qc.brainmask_figure(
                nib.load(str(res.native_preproc)), nib.load(str(res.brain_mask)), tmp, title))
        res.figures.append(figure)
        for contrast, volume_path in res.template_preproc.items():
            figure = paths.figure(contrast, "reg")
            if run(f"qc-reg-{contrast}", [figure], [volume_path], []):
                title = f"{paths.sub} {paths.mri_ses or ''} {contrast} in {TEMPLATE_SPACE}".replace("  ", " ")
                writer.figure(figure, lambda tmp, v=volume_path, t=title: qc.registration_figure(
                    nib.load(str(v)), template.template_mask_nifti(1), tmp, t, template.wm_nifti(1)))
            res.figures.append(figure)
    return res


def write_mri_slices(volume_path: Path, mask_path: Path, out: Path, raw: Path, config, writer: Writer) -> None:
    pcfg = config.preprocess
    volume = np.asarray(nib.load(str(volume_path)).dataobj, dtype=np.float32)
    mask = np.asarray(nib.load(str(mask_path)).dataobj) > 0
    normalised = slices.normalise_mri(volume, mask, tuple(pcfg.clip_percentiles), pcfg.gamma)
    idx = slices.slice_indices(volume.shape[0], pcfg.n_slices, tuple(pcfg.slice_band))
    stack, pads = slices.extract_slices(normalised, idx, pcfg.slice_size)
    meta = slices.slice_metadata(idx, stack, volume.shape[1:3], pads, pcfg.slice_size, tuple(pcfg.slice_band))
    writer.npy(out, stack.astype(np.float16), writer.sidecar(
        [volume_path, mask_path], [raw], Modality=_suffix(volume_path), **template.space_fields(1), BrainMasked=True,
        Values=(f"N4, brain-masked, clipped to the {pcfg.clip_percentiles[0]}/{pcfg.clip_percentiles[1]} brain "
                f"percentiles, scaled to [0, 1], gamma {pcfg.gamma}"), Units="arbitrary", **meta))


def _suffix(path: Path) -> str:
    return Path(path).name.split("_")[-1].split(".")[0]


def _affine(image) -> np.ndarray:
    from bids_amyloid.preprocess.images import ants_affine

    return ants_affine(image)
