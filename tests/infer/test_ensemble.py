"""The fold-ensemble pass: same logits as ``AmyloidNet.student``, attributions equal to a plain
per-fold computation (hooks + autograd), shared prefix only where folds really share it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bids_amyloid.infer.ensemble import run_ensemble, shared_prefix_depth
from bids_amyloid.models.bundle import load_bundle, load_students


@pytest.fixture(scope="module")
def students(tiny_bundle):
    return load_students(load_bundle(tiny_bundle), "cpu")


@pytest.fixture(scope="module")
def x():
    from helpers import brains as bf
    from bids_amyloid.models.inputs import to_model_input

    slices, _ = bf.cut_slices(np.asarray(bf.template_brain().dataobj), n=6)
    return to_model_input(slices, "T1w")


def _reference(nets, x):
    """Per fold, the textbook way: hook the input of the last block, backprop the logit."""
    cams, grads, logits = [], [], []
    for net in nets:
        captured = {}

        def hook(module, args):
            args[0].retain_grad()
            captured["a"] = args[0]

        handle = net.encoder.trunk.blocks[-1].register_forward_pre_hook(hook)
        xin = x.clone().requires_grad_(True)
        out = net.student(xin[None])
        handle.remove()
        out.logit.sum().backward()
        a, g = captured["a"][:, 1:], captured["a"].grad[:, 1:]
        cam = torch.relu((a * g.mean(1, keepdim=True)).sum(-1)).view(-1, 14, 14)
        w = out.slice_weights[0].detach().view(-1, 1, 1)
        for store, m in ((cams, cam.detach()), (grads, xin.grad.abs().sum(1))):
            m = m * w
            store.append(m / m.sum())
        logits.append(float(out.logit.detach()))
    return np.array(logits), torch.stack(cams).mean(0).numpy(), torch.stack(grads).mean(0).numpy()


def test_matches_textbook_gradcam_and_gradient(students, x):
    logits, cam, grad = _reference(students, x)
    result = run_ensemble(students, x, methods=("gradcam", "gradient"))
    assert np.allclose(result.logits, logits, atol=1e-5)
    assert np.allclose(result.maps["gradcam"], cam, rtol=1e-4, atol=1e-7)
    assert np.allclose(result.maps["gradient"], grad, rtol=1e-4, atol=1e-9)
    assert result.maps["gradcam"].sum() == pytest.approx(1.0, abs=1e-4)
    assert result.slice_weights.shape == (len(students), x.shape[0])
    assert np.allclose(result.slice_weights.sum(1), 1.0, atol=1e-5)


def test_prediction_only_and_single_method_agree(students, x):
    full = run_ensemble(students, x, methods=("gradcam", "gradient"))
    plain = run_ensemble(students, x)
    cam_only = run_ensemble(students, x, methods=("gradcam",))
    assert plain.maps == {} and np.allclose(plain.logits, full.logits, atol=1e-5)
    assert np.allclose(cam_only.maps["gradcam"], full.maps["gradcam"], atol=1e-7)
    assert np.all((plain.probabilities > 0) & (plain.probabilities < 1))


def test_shared_prefix_is_the_frozen_blocks(students):
    depth = shared_prefix_depth(students)
    assert depth == students[0].encoder.frozen_blocks < students[0].encoder.n_blocks
    with pytest.raises(ValueError):
        run_ensemble(students, torch.zeros(2, 3, 224, 224), methods=("lrp",))


def test_cpu_bf16_is_close_to_fp32(students, x):
    from bids_amyloid.models.device import cpu_has_bf16, precision

    assert precision(torch.device("cpu"), cpu_bf16=False) == "float32"
    if not cpu_has_bf16():
        assert precision(torch.device("cpu"), cpu_bf16=True) == "float32"  # emulated bf16 would be slower: not used
        pytest.skip("no native bf16 on this CPU")
    assert precision(torch.device("cpu"), cpu_bf16=True) == "bf16"
    # The CLS token before the final norm (the method's default) is unnormalised, so its maps are
    # more sensitive to bf16 rounding: measured on the tiny backbone, Grad-CAM 0.992 and input
    # gradient 0.986 (pre-norm) against 0.9999 and 0.9994 (post-norm, bundles made before).
    for pre_norm, min_corr in ((False, 0.99), (True, 0.98)):
        for net in students:
            net.encoder.cls_pre_norm = pre_norm
        fp32 = run_ensemble(students, x, methods=("gradcam", "gradient"))
        bf16 = run_ensemble(students, x, methods=("gradcam", "gradient"), cpu_bf16=True)
        assert np.abs(bf16.probabilities - fp32.probabilities).max() < 0.01
        for m in ("gradcam", "gradient"):
            assert np.corrcoef(bf16.maps[m].ravel(), fp32.maps[m].ravel())[0, 1] > min_corr, (pre_norm, m)
    for net in students:
        net.encoder.cls_pre_norm = True  # as loaded (the module-scoped fixture is shared)
