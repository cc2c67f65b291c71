"""The template grid and masks (offline assets)."""
from __future__ import annotations

import numpy as np

from bids_amyloid.space import template


def test_template_grids():
    assert template.template_shape(1) == (197, 233, 189)
    assert template.template_shape(2) == (99, 117, 95)
    mask = np.asarray(template.template_mask_nifti(1).dataobj)
    assert mask.dtype == np.uint8 and 1.0e6 < mask.sum() < 2.5e6
    dil = np.asarray(template.metric_mask_nifti(2, 3).dataobj) > 0
    assert dil.sum() > (np.asarray(template.template_mask_nifti(2).dataobj) > 0).sum()
