"""Builders shared by the infer and report tests: a tiny model bundle, slice caches cut from the
nilearn template brain exactly as docs/dev/README.md describes, and a "native" T1w made by
moving the template with a known affine (so native <-> template transforms are exact)."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from bids_amyloid.bids.derivatives import Derivatives
from bids_amyloid.config import Config, ModelConfig

N_SLICES, SIZE = 40, 224


def template_brain() -> nib.Nifti1Image:
    """nilearn's 1 mm ICBM152 2009a sym template scaled to [0, 1] with the MRI gamma (0.9)."""
    from nilearn import datasets

    img = datasets.load_mni152_template(resolution=1)
    data = np.asarray(img.get_fdata(), dtype=np.float32)
    data = np.clip(data / np.percentile(data[data > 0], 99.5), 0, 1) ** 0.9
    return nib.Nifti1Image(data.astype(np.float32), img.affine)


def cut_slices(volume: np.ndarray, n: int = N_SLICES, band=(0.40, 0.60)) -> tuple[np.ndarray, dict]:
    """Slice cache of a template-grid volume, made by the preprocessing stage's own functions."""
    from bids_amyloid.preprocess.slices import extract_slices, slice_indices, slice_metadata

    indices = slice_indices(volume.shape[0], n, band)
    slices, pads = extract_slices(volume, indices, SIZE)
    return slices.astype(np.float16), slice_metadata(indices, slices, volume.shape[1:3], pads, SIZE, band)


def write_slice_cache(out_dir: Path, subject: str, session: str | None, contrast: str, volume: np.ndarray) -> Path:
    slices, sidecar = cut_slices(volume)
    path = Derivatives(out_dir).session(subject, session).slices(contrast)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, slices)
    path.with_name(path.name.split(".")[0] + ".json").write_text(json.dumps(sidecar))
    return path


def write_native(out_dir: Path, subject: str, session: str | None, brain: nib.Nifti1Image,
                 angle_deg: float = 10.0) -> None:
    """A native T1w (template moved by a rotation + scaling + shift, on a 1.25 mm grid), its brain
    mask and the transform (template -> native is ``[xfm]`` inverted, ANTs convention)."""
    import ants

    paths = Derivatives(out_dir).session(subject, session)
    anat = paths.anat_dir
    anat.mkdir(parents=True, exist_ok=True)
    tpl_path = anat / "_template.nii.gz"
    nib.save(brain, str(tpl_path))
    from nilearn import datasets

    mask_tpl = anat / "_template_mask.nii.gz"
    nib.save(datasets.load_mni152_brain_mask(resolution=1), str(mask_tpl))
    template = ants.image_read(str(tpl_path))
    grid = ants.resample_image(template, (1.25, 1.25, 1.25), use_voxels=False, interp_type=0)
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]) * 1.05
    xfm = ants.create_ants_transform(transform_type="AffineTransform", dimension=3, matrix=rot,
                                     translation=(3.0, -4.0, 2.0), center=(0.0, 0.0, 0.0))
    xfm_path, inv_path = paths.xfm_to_template(), paths.xfm_from_template()
    ants.write_transform(xfm, str(xfm_path))
    ants.write_transform(xfm.invert(), str(inv_path))
    native = ants.apply_transforms(fixed=grid, moving=template, transformlist=[str(inv_path)], interpolator="linear")
    mask = ants.apply_transforms(fixed=grid, moving=ants.image_read(str(mask_tpl)), transformlist=[str(inv_path)],
                                 interpolator="nearestNeighbor")
    t1w, mask_path = paths.native_preproc(), paths.brain_mask()
    ants.image_write(native, str(t1w))
    ants.image_write(mask, str(mask_path))
    tpl_path.unlink()
    mask_tpl.unlink()


def record_for(out_dir: Path, subject: str = "01", session: str | None = "01", contrasts=("T1w",)):
    """The ``Preprocessed`` record of what the builders wrote (names as the preprocess stage's)."""
    from bids_amyloid.bids.records import Preprocessed

    p = Derivatives(out_dir).session(subject, session)
    return Preprocessed(
        subject=subject, session=session, mri_session=session, anchor="T1w", native_preproc=p.native_preproc(),
        brain_mask=p.brain_mask(), template_brain_mask=p.template_mask(), xfm_to_template=p.xfm_to_template(),
        xfm_from_template=p.xfm_from_template(), slices={c: p.slices(c) for c in contrasts})


def make_preprocessed(out_dir: Path, subject: str = "01", session: str | None = "01",
                      contrasts=("T1w",), native: bool = True):
    """Slice caches (and, with ``native``, a native T1w, mask and transforms) + their record."""
    brain = template_brain()
    if native:
        write_native(out_dir, subject, session, brain)
    for c in contrasts:
        write_slice_cache(out_dir, subject, session, c, np.asarray(brain.dataobj))
    return record_for(out_dir, subject, session, contrasts)


def make_bundle(dest: Path, work: Path, *, folds: int = 3, contrasts=("T1w",), thresholds=None, decisions=None):
    """A tiny-backbone bundle whose folds differ (random LoRA B, heads seeded per fold);
    ``decisions``: per fold FoldDecision (calibrator, operating points), else none."""
    from bids_amyloid.models.bundle_write import save_bundle
    from bids_amyloid.models.networks import build_network
    from bids_amyloid.models.weights import convert_checkpoint, write_random_checkpoint

    ckpt = write_random_checkpoint(work / "tiny.safetensors", "tiny", seed=0)
    weights = convert_checkpoint(ckpt, work / "tiny-weights", "tiny")
    config = Config(bids_dir=work / "bids", output_dir=work / "out", analysis_level="group",
                    contrasts=list(contrasts), model=ModelConfig(backbone="tiny"))
    nets = []
    for fold in range(folds):
        net = build_network(config.model, weights, seed=fold)
        gen = torch.Generator().manual_seed(100 + fold)
        with torch.no_grad():
            for name, p in net.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
        nets.append(net)
    thresholds = thresholds or [0.4 + 0.05 * f for f in range(folds)]
    thresholds = [d.threshold for d in decisions] if decisions else thresholds
    return save_bundle(dest, config=config, students=[n.state_dict() for n in nets], thresholds=thresholds,
                       metrics={"note": "test"}, training_summary={"note": "test"}, decisions=decisions)


def infer_config(out_dir: Path, model: Path, **kwargs) -> Config:
    return Config(bids_dir=out_dir.parent / "bids", output_dir=out_dir, analysis_level="participant",
                  model_path=model, device="cpu", **kwargs)


def session(subject: str = "01", ses: str | None = "01", contrasts=("T1w",)):
    from bids_amyloid.bids.records import Session

    return Session(subject=subject, session=ses, anat={c: Path(f"/raw/{c}.nii.gz") for c in contrasts},
                   mri_session=ses)
