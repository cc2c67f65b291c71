"""MRI stages of one MRI session, declared up front: N4 -> template registration + skull strip ->
anchor in template space -> other contrasts -> slice tensors -> QC figures.

The anchor is the T1w when the session has one, else the first available contrast; other
contrasts are registered rigidly to the anchor and mapped to the template through the composed
transforms (one resampling). Run under the caller's lock by :class:`~.stages.StageRunner`.
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from bids_amyloid.config import CONTRASTS, TEMPLATE_SPACE
from bids_amyloid.preprocess import bias, qc, register, skullstrip, slices
from bids_amyloid.preprocess.images import load_image, max_voxel_for
from bids_amyloid.preprocess.outputs import Context
from bids_amyloid.preprocess.stages import Stage
from bids_amyloid.space import template
from bids_amyloid.space.antsio import ants_affine, nifti_like, to_ants, to_nifti


def anchor_contrast(anat: dict[str, Path]) -> str:
    return "T1w" if "T1w" in anat else next(c for c in CONTRASTS if c in anat)


def contrasts_to_process(anat: dict[str, Path], requested: list[str]) -> list[str]:
    """The anchor first, then the requested contrasts the session has, in CONTRASTS order."""
    anchor = anchor_contrast(anat)
    return [anchor] + [c for c in CONTRASTS if c != anchor and c in anat and c in requested]


def _registration(ctx: Context) -> register.Registration:
    p = ctx.paths
    return register.Registration((str(p.xfm_to_template()),), (str(p.xfm_from_template()),),
                                 ctx.config.preprocess.registration)


def _n4(ctx: Context) -> Stage:
    p, pcfg, sloppy, anchor = ctx.paths, ctx.config.preprocess, ctx.config.sloppy, ctx.paths.anchor
    raw = Path(ctx.anat[anchor])

    def run() -> None:
        loaded = load_image(raw, anchor, max_voxel_for(anchor, pcfg))
        head = bias.n4(to_ants(loaded.image), pcfg, sloppy=sloppy)
        ctx.writer.nifti(p.native_preproc(), to_nifti(head), ctx.writer.sidecar(
            [raw], [raw], Description=f"{anchor} bias-corrected (N4), reoriented to RAS", SkullStripped=False,
            SpatialReference=ctx.writer.uri(raw), OriginalOrientation=loaded.orientation,
            BiasCorrection=bias.n4_settings(pcfg, sloppy)))
        ctx.cache.put(p.native_preproc(), head)

    return Stage(f"n4-{anchor}", (p.native_preproc(),), run, raw=(raw,))


def _register(ctx: Context) -> Stage:
    p, pcfg, sloppy, anchor, w = ctx.paths, ctx.config.preprocess, ctx.config.sloppy, ctx.paths.anchor, ctx.writer
    raw = Path(ctx.anat[anchor])

    def run() -> None:
        head = ctx.cache.get(p.native_preproc())
        reg = register.register_to_template(head, pcfg, ctx.workdir, sloppy=sloppy, name=anchor)
        src, meta = [p.native_preproc()], dict(Registration=register.settings(pcfg, sloppy))
        w.copy(reg.forward[0], p.xfm_to_template(), w.sidecar(src, [raw], FromSpace=anchor, ToSpace=TEMPLATE_SPACE,
                                                              **meta))
        w.copy(reg.inverse[0], p.xfm_from_template(), w.sidecar(src, [raw], FromSpace=TEMPLATE_SPACE, ToSpace=anchor,
                                                                **meta))
        mask = skullstrip.native_brain_mask(head, _registration(ctx))
        w.nifti(p.brain_mask(), nifti_like(mask, ants_affine(head), np.uint8), w.sidecar(
            src + [p.xfm_from_template()], [raw], Description=f"Brain mask of the {anchor}", Type="Brain",
            RawSources=[w.uri(raw)], SpatialReference=w.uri(p.native_preproc()), SkullStripping=skullstrip.METHOD))

    return Stage("register", (p.xfm_to_template(), p.xfm_from_template(), p.brain_mask()), run,
                 (p.native_preproc(),), (raw,))


def _anchor_to_template(ctx: Context) -> Stage:
    p, pcfg, sloppy, anchor, w = ctx.paths, ctx.config.preprocess, ctx.config.sloppy, ctx.paths.anchor, ctx.writer
    raw, out = Path(ctx.anat[anchor]), p.template_preproc(anchor)

    def run() -> None:
        grid, affine = to_ants(template.template_nifti(1)), template.template_nifti(1).affine
        reg = _registration(ctx)
        tmask = skullstrip.template_brain_mask(ctx.cache.get(p.brain_mask()), reg)
        warped = register.apply(grid, ctx.cache.get(p.native_preproc()), reg.forward).numpy() * tmask
        common = template.space_fields(1)
        w.nifti(p.template_mask(), nifti_like(tmask, affine, np.uint8, 4), w.sidecar(
            [p.brain_mask(), p.xfm_to_template()], [raw], Description="Brain mask in template space", Type="Brain",
            **common))
        w.nifti(out, nifti_like(warped, affine, np.float32, 4), w.sidecar(
            [p.native_preproc(), p.xfm_to_template(), p.brain_mask()], [raw],
            Description=f"{anchor} bias-corrected, skull-stripped, in template space (1 mm, linear)",
            SkullStripped=True, Registration=register.settings(pcfg, sloppy), **common))

    return Stage(f"template-{anchor}", (out, p.template_mask()), run,
                 (p.native_preproc(), p.xfm_to_template(), p.brain_mask()), (raw,))


def _other_contrast(ctx: Context, contrast: str) -> Stage:
    """Rigid to the anchor (whole head: measured more accurate than masked), composed into the template."""
    p, pcfg, sloppy, anchor, w = ctx.paths, ctx.config.preprocess, ctx.config.sloppy, ctx.paths.anchor, ctx.writer
    raw, out_xfm, out_tpl = Path(ctx.anat[contrast]), p.xfm_to_anchor(contrast), p.template_preproc(contrast)

    def run() -> None:
        loaded = load_image(raw, contrast, max_voxel_for(contrast, pcfg))
        image = bias.n4(to_ants(loaded.image), pcfg, sloppy=sloppy)
        rigid = register.register_rigid(ctx.cache.get(p.native_preproc()), image, None, ctx.workdir, contrast,
                                        sloppy=sloppy)
        w.copy(rigid.forward[0], out_xfm, w.sidecar([raw, p.native_preproc()], [raw], FromSpace=contrast,
                                                    ToSpace=anchor, Registration="Rigid, Mattes MI"))
        tmask = np.asarray(nib.load(str(p.template_mask())).dataobj) > 0
        grid = to_ants(template.template_nifti(1))
        warped = register.apply(grid, image, _registration(ctx).forward + (str(out_xfm),)).numpy() * tmask
        w.nifti(out_tpl, nifti_like(warped, template.template_nifti(1).affine, np.float32, 4), w.sidecar(
            [raw, out_xfm, p.xfm_to_template(), p.template_mask()], [raw],
            Description=f"{contrast} bias-corrected (N4), rigid to {anchor}, skull-stripped, in template space",
            SkullStripped=True, **template.space_fields(1), OriginalOrientation=loaded.orientation,
            BiasCorrection=bias.n4_settings(pcfg, sloppy)))

    return Stage(f"register-{contrast}", (out_xfm, out_tpl), run,
                 (p.native_preproc(), p.brain_mask(), p.xfm_to_template(), p.template_mask()), (raw,))


def _slices(ctx: Context, contrast: str) -> Stage:
    p, pcfg, w = ctx.paths, ctx.config.preprocess, ctx.writer
    volume_path, raw, out = p.template_preproc(contrast), Path(ctx.anat[contrast]), p.slices(contrast)

    def run() -> None:
        volume = np.asarray(nib.load(str(volume_path)).dataobj, dtype=np.float32)
        mask = np.asarray(nib.load(str(p.template_mask())).dataobj) > 0
        normalised = slices.normalise_mri(volume, mask, tuple(pcfg.clip_percentiles), pcfg.gamma)
        idx = slices.slice_indices(volume.shape[0], pcfg.n_slices, tuple(pcfg.slice_band))
        stack, pads = slices.extract_slices(normalised, idx, pcfg.slice_size)
        meta = slices.slice_metadata(idx, stack, volume.shape[1:3], pads, pcfg.slice_size, tuple(pcfg.slice_band))
        w.npy(out, stack.astype(np.float16), w.sidecar(
            [volume_path, p.template_mask()], [raw], Modality=contrast, **template.space_fields(1),
            BrainMasked=True, Values=(f"N4, brain-masked, clipped to the {pcfg.clip_percentiles[0]}/"
                                      f"{pcfg.clip_percentiles[1]} brain percentiles, scaled to [0, 1], gamma "
                                      f"{pcfg.gamma}"), Units="arbitrary", **meta))

    return Stage(f"slices-{contrast}", (out,), run, (volume_path, p.template_mask()), (raw,))


def _qc_figures(ctx: Context, contrasts: list[str]) -> list[Stage]:
    p, w = ctx.paths, ctx.writer
    mask_figure = p.figure(p.anchor, "brainmask")
    title = f"{p.sub} {p.mri_ses or ''} {p.anchor} brain mask".replace("  ", " ")
    stages = [Stage("qc-brainmask", (mask_figure,), lambda: w.figure(mask_figure, lambda tmp: qc.brainmask_figure(
        nib.load(str(p.native_preproc())), nib.load(str(p.brain_mask())), tmp, title)),
        (p.brain_mask(), p.native_preproc()))]
    for contrast in contrasts:
        volume, figure = p.template_preproc(contrast), p.figure(contrast, "reg")
        caption = f"{p.sub} {p.mri_ses or ''} {contrast} in {TEMPLATE_SPACE}".replace("  ", " ")
        stages.append(Stage(f"qc-reg-{contrast}", (figure,), lambda v=volume, f=figure, t=caption: w.figure(
            f, lambda tmp: qc.registration_figure(nib.load(str(v)), template.template_mask_nifti(1), tmp, t,
                                                  template.wm_nifti(1))), (volume,)))
    return stages


def anat_stages(ctx: Context) -> list[Stage]:
    """Every MRI stage of the session, in order."""
    contrasts = contrasts_to_process(ctx.anat, ctx.config.contrasts)
    stages = [_n4(ctx), _register(ctx), _anchor_to_template(ctx)]
    stages += [_other_contrast(ctx, c) for c in contrasts[1:]]
    stages += [_slices(ctx, c) for c in contrasts]
    if ctx.config.preprocess.qc_figures:
        stages += _qc_figures(ctx, contrasts)
    return stages
