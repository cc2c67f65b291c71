"""Augmentation: one parameter set per sample, identical for MRI and PET, replayable, no flips."""
import torch

from bids_amyloid.train.augment import apply_params, augment_pair, sample_params


def _image(n=3, size=48):
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    img = 0.2 + 0.6 * y * (x > 0.3)  # asymmetric in both axes
    return img.expand(n, size, size).clone()


def test_mri_and_pet_get_identical_parameters():
    mri = _image()
    scale = 3.0
    for seed in range(20):
        out_mri, out_pet, params = augment_pair(mri, mri * scale, torch.Generator().manual_seed(seed), scale)
        assert torch.allclose(out_pet / scale, out_mri, atol=1e-5), params
        assert torch.equal(apply_params(mri, params), out_mri)  # replayable from the parameters


def test_same_generator_same_result_and_draws_differ():
    mri = _image()
    a = augment_pair(mri, None, torch.Generator().manual_seed(5), 3.0)[0]
    b = augment_pair(mri, None, torch.Generator().manual_seed(5), 3.0)[0]
    c = augment_pair(mri, None, torch.Generator().manual_seed(6), 3.0)[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_parameter_ranges_and_no_flips():
    img = _image(1)
    seen_blur = seen_gamma = seen_noise = seen_erase = 0
    for seed in range(200):
        p = sample_params(torch.Generator().manual_seed(seed), (48, 48))
        assert -7 <= p.angle <= 7 and 0.95 <= p.scale <= 1.05
        assert all(abs(t) <= 0.05 for t in p.translate)
        assert 0.9 <= p.brightness <= 1.1 and 0.9 <= p.contrast <= 1.1
        assert p.gamma is None or 0.9 <= p.gamma <= 1.1
        assert p.noise_sigma is None or 0.01 <= p.noise_sigma <= 0.03
        seen_blur += p.blur_sigma is not None
        seen_gamma += p.gamma is not None
        seen_noise += p.noise_sigma is not None
        if p.erase_box is not None:
            seen_erase += 1
            top, left, h, w = p.erase_box
            assert 0.05 * 48 * 48 * 0.8 <= h * w <= 0.12 * 48 * 48 * 1.2
        if seed < 40:  # never closer to a flipped image than to the original
            out = apply_params(img, p)[0]
            for flipped in (img[0].flip(0), img[0].flip(1)):
                assert (out - img[0]).abs().mean() < (out - flipped).abs().mean()
    assert 40 <= seen_blur <= 80 and 70 <= seen_gamma <= 130 and 70 <= seen_noise <= 130 and 25 <= seen_erase <= 75
    assert not any("flip" in name for name in p.__dataclass_fields__)


def test_pet_alone_gets_the_parameters_of_the_pair():
    img = _image()
    _, pair_pet, _ = augment_pair(img, img * 2, torch.Generator().manual_seed(9), 2.0)
    _, alone, _ = augment_pair(None, img * 2, torch.Generator().manual_seed(9), 2.0)
    assert torch.equal(pair_pet, alone)
