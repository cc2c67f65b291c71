import numpy as np
import pytest
import torch

from bids_amyloid.errors import DataError, UsageError
from bids_amyloid.models.inputs import CLIP_MEAN, CLIP_STD, select_slices, to_model_input


def test_select_slices_evenly_spaced_and_ordered():
    idx = select_slices([0.5] * 40, 25)
    assert len(idx) == 25 and idx == sorted(idx) and len(set(idx)) == 25
    assert idx[0] == 0 and idx[-1] == 39
    assert select_slices([0.5] * 5, 5) == [0, 1, 2, 3, 4]
    assert select_slices([0.5] * 40, 1) == [0]


def test_select_slices_min_mean_rule():
    means = [0.0, 0.005, 0.01, 0.2, float("nan"), 0.3, 0.009, 0.5]
    # valid: 0.01 (>=, index 2), 3, 5, 7; NaN and < 0.01 dropped
    assert select_slices(means, 4) == [2, 3, 5, 7]
    assert select_slices(means, 2) == [2, 7]
    assert select_slices(means, 4, min_mean=0.25) == [5, 5, 7, 7]


def test_select_slices_fewer_valid_repeats_to_fixed_count():
    idx = select_slices([0.0, 0.5, 0.5, 0.0], 5)
    assert len(idx) == 5 and set(idx) == {1, 2} and idx == sorted(idx)


def test_select_slices_none_valid_names_source():
    with pytest.raises(DataError, match="sub-01_x.npy"):
        select_slices([0.0, 0.001], 3, source="sub-01_x.npy")
    with pytest.raises(UsageError):
        select_slices([0.5], 0)


def test_to_model_input_mri_normalisation():
    s = np.zeros((3, 224, 224), dtype=np.float16)
    s[1] = 1.0
    s[2] = 0.5
    x = to_model_input(s, "mri", 3.0)
    assert x.shape == (3, 3, 224, 224) and x.dtype == torch.float32
    mean, std = torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD)
    torch.testing.assert_close(x[0, :, 10, 10], -mean / std)
    torch.testing.assert_close(x[1, :, 10, 10], (1 - mean) / std)
    torch.testing.assert_close(x[2, :, 0, 0], (0.5 - mean) / std)
    assert torch.equal(to_model_input(s, "T1w", 3.0), x)  # contrast names count as MRI


def test_to_model_input_pet_scale_and_clip():
    s = torch.tensor([1.5, 6.0, -1.0, float("nan")]).view(4, 1, 1).expand(4, 224, 224)
    x = to_model_input(s, "pet", 3.0)
    gray = x[:, 0, 5, 5] * CLIP_STD[0] + CLIP_MEAN[0]
    torch.testing.assert_close(gray, torch.tensor([0.5, 1.0, 0.0, 0.0]))
    with pytest.raises(UsageError):
        to_model_input(s, "ct", 3.0)


def test_to_model_input_resizes_and_keeps_leading_dims():
    x = to_model_input(np.full((2, 5, 100, 120), 0.25, dtype=np.float32), "mri", 3.0)
    assert x.shape == (2, 5, 3, 224, 224)
    torch.testing.assert_close(x[1, 4, 2, 50, 50], torch.tensor((0.25 - CLIP_MEAN[2]) / CLIP_STD[2]))
