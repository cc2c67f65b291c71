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
    from bids_amyloid.models.device import cpu_has_bf16

    if not cpu_has_bf16():
        pytest.skip("no native bf16 on this CPU")
    # The CLS token before the final norm (the method's default) is unnormalised, so its maps are
    # more sensitive to bf16 rounding: measured on the tiny backbone, Grad-CAM 0.992 and input
    # gradient 0.986 (pre-norm) against 0.9999 and 0.9994 (post-norm, bundles made before).
    for pre_norm, min_corr in ((False, 0.99), (True, 0.98)):
        for net in students:
            net.encoder.cls_pre_norm = pre_norm
        fp32 = run_ensemble(students, x, methods=("gradcam", "gradient"))
        bf16 = run_ensemble(students, x, methods=("gradcam", "gradient"), bf16=True)
        assert np.abs(bf16.probabilities - fp32.probabilities).max() < 0.01
        for m in ("gradcam", "gradient"):
            assert np.corrcoef(bf16.maps[m].ravel(), fp32.maps[m].ravel())[0, 1] > min_corr, (pre_norm, m)
    for net in students:
        net.encoder.cls_pre_norm = True  # as loaded (the module-scoped fixture is shared)


@pytest.mark.parametrize("chunk", [1, 4, 100])
def test_input_gradient_chunks_do_not_change_the_map(students, x, chunk):
    whole = run_ensemble(students, x, methods=("gradient",), chunk=x.shape[0])
    chunked = run_ensemble(students, x, methods=("gradient",), chunk=chunk)
    assert np.allclose(chunked.maps["gradient"], whole.maps["gradient"], rtol=1e-4, atol=1e-9)


def test_ensemble_gradient_is_the_gradient_of_the_mean_logit(students, x):
    """``gradient_of='ensemble'``: |d mean_f z_f / dx|, weighted by the mean slice weights, sum 1."""
    xin = x.clone().requires_grad_(True)
    outs = [net.student(xin[None]) for net in students]
    torch.stack([o.logit.reshape(()) for o in outs]).mean().backward()
    w = torch.stack([o.slice_weights[0].detach() for o in outs]).mean(0).view(-1, 1, 1)
    expected = xin.grad.abs().sum(1) * w
    expected = (expected / expected.sum()).numpy()
    result = run_ensemble(students, x, methods=("gradcam", "gradient"), gradient_of="ensemble")
    assert np.allclose(result.maps["gradient"], expected, rtol=1e-4, atol=1e-9)
    per_fold = run_ensemble(students, x, methods=("gradcam", "gradient"))
    assert np.allclose(result.maps["gradcam"], per_fold.maps["gradcam"], atol=1e-7)
    assert np.allclose(result.logits, per_fold.logits, atol=1e-6)
    with pytest.raises(ValueError, match="gradient_of"):
        run_ensemble(students, x, methods=("gradient",), gradient_of="mean")


def test_explicit_attention_only_while_gradients_flow(students, x):
    attns = [b.attn for b in students[0].encoder.trunk.blocks]
    assert all(a.fused_attn for a in attns)
    seen = []
    handle = attns[-1].register_forward_pre_hook(lambda module, args: seen.append(module.fused_attn))
    try:
        run_ensemble(students[:1], x[:2], methods=("gradcam",))
        run_ensemble(students[:1], x[:2])
    finally:
        handle.remove()
    assert seen == [False, True] and all(a.fused_attn for a in attns)

