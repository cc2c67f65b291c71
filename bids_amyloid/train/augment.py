"""Train-time augmentation, identical for the MRI and the PET of one sample (method.md 2).

TorchIO-style: :func:`sample_params` draws every random parameter of one sample from a
``torch.Generator`` (always the same number of draws, whatever is switched on), and
:func:`apply_params` applies them deterministically. The same parameters (and the same noise
field and erasing box) are applied to every slice of the sample and to both modalities, so the
MRI and PET stay aligned. There are NO flips: flipping a sagittal slice swaps anterior and
posterior.

Intensity transforms act on "unit scale" images: MRI as stored ([0, 1]), PET as SUVR divided
by ``pet_suvr_scale`` (what :func:`bids_amyloid.models.inputs.to_model_input` does before its
clamp), so a gamma or a noise sigma means the same thing for both modalities.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

DEGREES = 7.0
TRANSLATE = 0.05
SCALE = (0.95, 1.05)
BRIGHTNESS = 0.1
CONTRAST = 0.1
BLUR_P, BLUR_KERNEL, BLUR_SIGMA = 0.3, 3, (0.1, 2.0)
GAMMA_P, GAMMA = 0.5, (0.9, 1.1)
NOISE_P, NOISE_SIGMA = 0.5, (0.01, 0.03)
ERASE_P, ERASE_SCALE, ERASE_RATIO = 0.25, (0.05, 0.12), (0.3, 3.3)


@dataclass(frozen=True)
class AugmentParams:
    """Everything random about one sample's augmentation (replayable, loggable)."""

    angle: float
    """Rotation in degrees."""
    translate: tuple[float, float]
    """Shift as a fraction of the image size (rows, columns)."""
    scale: float
    brightness: float
    contrast: float
    blur_sigma: float | None
    gamma: float | None
    noise_sigma: float | None
    noise_seed: int
    erase_box: tuple[int, int, int, int] | None
    """(top, left, height, width) in pixels, or None."""


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def sample_params(gen: torch.Generator, size: tuple[int, int]) -> AugmentParams:
    """Draw one sample's parameters (a fixed sequence of draws from ``gen``)."""
    h, w = size
    angle = _uniform(gen, -DEGREES, DEGREES)
    translate = (_uniform(gen, -TRANSLATE, TRANSLATE), _uniform(gen, -TRANSLATE, TRANSLATE))
    scale = _uniform(gen, *SCALE)
    brightness = _uniform(gen, 1 - BRIGHTNESS, 1 + BRIGHTNESS)
    contrast = _uniform(gen, 1 - CONTRAST, 1 + CONTRAST)
    blur = _uniform(gen, *BLUR_SIGMA)
    use_blur = _uniform(gen, 0, 1) < BLUR_P
    gamma = _uniform(gen, *GAMMA)
    use_gamma = _uniform(gen, 0, 1) < GAMMA_P
    sigma = _uniform(gen, *NOISE_SIGMA)
    use_noise = _uniform(gen, 0, 1) < NOISE_P
    noise_seed = int(torch.randint(0, 2**62, (), generator=gen))
    use_erase = _uniform(gen, 0, 1) < ERASE_P
    boxes = torch.rand((10, 4), generator=gen)  # torchvision's 10 attempts, drawn up front
    box = None
    if use_erase:
        for area_u, ratio_u, top_u, left_u in boxes.tolist():
            area = h * w * (ERASE_SCALE[0] + (ERASE_SCALE[1] - ERASE_SCALE[0]) * area_u)
            log_lo, log_hi = math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1])
            ratio = math.exp(log_lo + (log_hi - log_lo) * ratio_u)
            eh, ew = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
            if eh < h and ew < w:
                box = (int(top_u * (h - eh + 1)), int(left_u * (w - ew + 1)), eh, ew)
                break
    return AugmentParams(
        angle=angle, translate=translate, scale=scale, brightness=brightness, contrast=contrast,
        blur_sigma=blur if use_blur else None, gamma=gamma if use_gamma else None,
        noise_sigma=sigma if use_noise else None, noise_seed=noise_seed, erase_box=box,
    )


def _affine(x: Tensor, p: AugmentParams) -> Tensor:
    """Rotate/scale about the centre and shift; ``x`` is [S, H, W]; zeros outside."""
    rad = math.radians(p.angle)
    cos, sin = math.cos(rad) / p.scale, math.sin(rad) / p.scale
    # affine_grid maps output -> input coordinates (x = columns, y = rows, in [-1, 1]): the inverse
    # of "scale, rotate, then shift by translate".
    ty, tx = 2 * p.translate[0], 2 * p.translate[1]
    inv = torch.tensor([[cos, sin], [-sin, cos]], dtype=torch.float64)
    shift = -inv @ torch.tensor([tx, ty], dtype=torch.float64)
    theta = torch.cat([inv, shift[:, None]], dim=1).to(x.dtype)[None].expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, [x.shape[0], 1, *x.shape[-2:]], align_corners=False)
    return F.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]


def _blur(x: Tensor, sigma: float) -> Tensor:
    r = torch.arange(BLUR_KERNEL, dtype=x.dtype) - BLUR_KERNEL // 2
    k = torch.exp(-(r**2) / (2 * sigma**2))
    k = k / k.sum()
    kernel = (k[:, None] * k[None, :])[None, None]
    pad = BLUR_KERNEL // 2
    return F.conv2d(F.pad(x[:, None], (pad, pad, pad, pad), mode="reflect"), kernel)[:, 0]


def apply_params(x: Tensor, p: AugmentParams) -> Tensor:
    """Apply ``p`` to unit-scale slices ``x`` [S, H, W] (float32); returns a new tensor."""
    x = _affine(x.float(), p)
    x = (x * p.brightness).clamp(min=0)
    mean = x.mean(dim=(-2, -1), keepdim=True)
    x = ((x - mean) * p.contrast + mean).clamp(min=0)
    if p.blur_sigma is not None:
        x = _blur(x, p.blur_sigma)
    if p.gamma is not None:
        x = x.clamp(min=0) ** p.gamma
    if p.noise_sigma is not None:
        noise_gen = torch.Generator().manual_seed(p.noise_seed)
        x = x + p.noise_sigma * torch.randn(x.shape, generator=noise_gen, dtype=x.dtype)
    if p.erase_box is not None:
        top, left, eh, ew = p.erase_box
        x = x.clone()
        x[:, top:top + eh, left:left + ew] = 0.0
    return x


def augment_pair(mri: Tensor | None, pet: Tensor | None, gen: torch.Generator,
                 pet_suvr_scale: float) -> tuple[Tensor | None, Tensor | None, AugmentParams]:
    """Augment one sample's MRI and PET (SUVR) slices with one set of parameters (either may be
    None: a PET-only read gets the parameters its MRI would get from the same generator)."""
    params = sample_params(gen, tuple((mri if mri is not None else pet).shape[-2:]))
    mri_out = None if mri is None else apply_params(mri, params)
    pet_out = None if pet is None else apply_params(pet.float() / pet_suvr_scale, params) * pet_suvr_scale
    return mri_out, pet_out, params
