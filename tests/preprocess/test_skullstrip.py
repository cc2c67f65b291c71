"""Skull stripping by registration, measured on the real ch2 head (mricron-data).

Reference mask: ch2bet > 0, its largest connected component, holes filled (ch2bet itself is rough:
streaks, inferior cerebellum cut, so a better mask can score lower against it).
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from bids_amyloid.config import PreprocessConfig
from bids_amyloid.preprocess import bias, register, skullstrip
from bids_amyloid.space import template
from bids_amyloid.preprocess.images import load_image
from bids_amyloid.space.antsio import to_ants

from helpers.preprocessing import CH2, CH2BET, needs_ch2


def reference_mask() -> np.ndarray:
    ref = np.asarray(nib.load(str(CH2BET)).dataobj) > 0
    labels, _ = ndimage.label(ref)
    ref = labels == np.bincount(labels.ravel())[1:].argmax() + 1
    return ndimage.binary_fill_holes(ref)


@needs_ch2
def test_ch2_dice(tmp_path, capsys):
    register.configure_ants(1234, 2)
    pcfg = PreprocessConfig()
    head = to_ants(load_image(CH2, "T1w", 1.5).image)
    head = bias.n4(head, pcfg, sloppy=True)
    reg = register.register_to_template(head, pcfg, tmp_path)  # default (not sloppy) affine
    mask = skullstrip.native_brain_mask(head, reg)
    truth = reference_mask()
    native_dice = skullstrip.dice(mask, truth)
    # the reference mask taken into template space vs the template's own brain mask
    warped = skullstrip.template_brain_mask(head.new_image_like(truth.astype(np.float32)), reg)
    tmask = np.asarray(template.template_mask_nifti(1).dataobj) > 0
    template_dice = skullstrip.dice(warped, tmask)
    with capsys.disabled():
        print(f"\nch2 skull strip Dice vs ch2bet: {native_dice:.4f}; "
              f"ch2bet in template space vs template mask: {template_dice:.4f}")
    assert native_dice >= 0.95
    assert template_dice >= 0.95


def test_dice_helper():
    a = np.zeros((10, 10), bool)
    a[:5] = True
    assert skullstrip.dice(a, a) == 1.0
    assert skullstrip.dice(a, ~a) == 0.0
    assert skullstrip.dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0


def test_clean_mask_keeps_largest_component_and_fills_holes():
    m = np.zeros((20, 20, 20), bool)
    m[2:12, 2:12, 2:12] = True
    m[6, 6, 6] = False  # hole
    m[16:18, 16:18, 16:18] = True  # island
    out = skullstrip.clean_mask(m)
    assert out[6, 6, 6] and not out[17, 17, 17]
    assert Path(CH2).name == "ch2.nii.gz"
