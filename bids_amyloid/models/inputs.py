"""Slice cache -> model input. Training and inference both go through here, so they cannot
disagree: choose the input slices, scale PET, replicate gray to 3 channels, CLIP-normalise."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from bids_amyloid.errors import DataError, UsageError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
"""OpenAI CLIP channel means (BiomedCLIP's preprocessing)."""
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
"""OpenAI CLIP channel standard deviations."""
IMAGE_SIZE = 224
"""Model input size (pixels)."""

MRI_MODALITIES = ("mri", "t1w", "t2w", "flair", "t2starw")
PET_MODALITIES = ("pet",)


def select_slices(slice_means: Sequence[float], n_input: int, min_mean: float = 0.01,
                  *, source: str | None = None) -> list[int]:
    """Indices (ascending) of ``n_input`` evenly spaced slices among the valid ones.

    Valid = mean >= ``min_mean`` (the method drops slices whose mean is < 0.01; NaN is invalid).
    With fewer valid slices than ``n_input``, evenly spaced indices repeat some slices so every
    session still gives ``n_input`` (a batch needs a fixed count). No valid slice: DataError
    (``source`` names the file in the message).
    """
    if n_input < 1:
        raise UsageError(f"input slices must be >= 1, got {n_input}")
    means = np.asarray(slice_means, dtype=float)
    valid = np.flatnonzero(np.nan_to_num(means, nan=-np.inf) >= min_mean)
    if valid.size == 0:
        where = f"{source}: " if source else ""
        raise DataError(f"{where}no slice has a mean intensity >= {min_mean} (empty or failed preprocessing)")
    pick = np.rint(np.linspace(0, valid.size - 1, n_input)).astype(int)
    return [int(i) for i in valid[pick]]


def _is_pet(modality: str) -> bool:
    mod = modality.lower()
    if mod in PET_MODALITIES:
        return True
    if mod in MRI_MODALITIES:
        return False
    raise UsageError(f"unknown modality {modality!r}; use 'mri' (or an MRI contrast) or 'pet'")


def to_model_input(slices: np.ndarray | Tensor, modality: str, pet_suvr_scale: float = 3.0) -> Tensor:
    """``[..., H, W]`` slices (float16/32) -> ``[..., 3, 224, 224]`` float32 model input.

    MRI values are used as they are (already in [0, 1]); PET becomes ``clip(SUVR / scale, 0, 1)``.
    Non-finite values become 0. Other sizes are resized bilinearly to 224 x 224. Gray is
    replicated to 3 channels, then normalised with the CLIP mean/std.
    """
    x = torch.as_tensor(np.asarray(slices) if not isinstance(slices, Tensor) else slices)
    if x.dim() < 2:
        raise DataError(f"slices must be [..., H, W], got shape {tuple(x.shape)}")
    x = torch.nan_to_num(x.float(), nan=0.0, posinf=0.0, neginf=0.0)
    if _is_pet(modality):
        if pet_suvr_scale <= 0:
            raise UsageError(f"pet_suvr_scale must be positive, got {pet_suvr_scale}")
        x = (x / pet_suvr_scale).clamp(0.0, 1.0)
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    x = x.reshape(-1, 1, h, w)
    if (h, w) != (IMAGE_SIZE, IMAGE_SIZE):
        x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=x.dtype).view(1, 3, 1, 1)
    x = (x.expand(-1, 3, -1, -1) - mean) / std
    return x.reshape(*lead, 3, IMAGE_SIZE, IMAGE_SIZE).contiguous()
