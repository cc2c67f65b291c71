import pytest
import torch

from bids_amyloid.models.weights import load_slice_encoder
from bids_amyloid.models.lora import add_lora, lora_parameters
from bids_amyloid.models.networks import build_network
from bids_amyloid.models.pooling import AttentionPooling


def _batch(b=2, s=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, s, 3, 224, 224, generator=g), torch.randn(b, s, 3, 224, 224, generator=g)


def test_lora_is_identity_at_init(tiny_weights):
    base = load_slice_encoder("tiny", tiny_weights)
    adapted = load_slice_encoder("tiny", tiny_weights)
    add_lora(adapted, 32, 32.0, 0.1, 3)
    adapted.train()  # LoRA dropout active: B = 0 still makes the delta zero
    x = torch.randn(4, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(adapted(x), base(x), rtol=0, atol=1e-6)
    with pytest.raises(ValueError):
        add_lora(adapted, 32, 32.0, 0.1, 3)


def test_only_lora_and_heads_trainable(tiny_weights, tiny_config):
    net = build_network(tiny_config, tiny_weights)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    for name in trainable:
        assert "lora_" in name or not name.startswith("encoder."), name
    lora = [n for n in trainable if "lora_" in n]
    blocks = {int(n.split("blocks.")[1].split(".")[0]) for n in lora}
    assert blocks == {3, 4, 5}  # second half of the 6 tiny blocks
    assert {n.rsplit(".", 1)[-1] for n in lora} == {
        "lora_A_q", "lora_B_q", "lora_A_k", "lora_B_k", "lora_A_v", "lora_B_v", "lora_A", "lora_B"}
    groups = net.parameter_groups()
    assert sum(len(v) for v in groups.values()) == len(trainable)


def test_forward_shapes(tiny_weights, tiny_config):
    net = build_network(tiny_config, tiny_weights).eval()
    mri, pet = _batch()
    t = net.teacher(mri, pet)
    s = net.student(mri)
    assert t.logit.shape == (2,) and t.pooled.shape == (2, 128) and t.slice_weights.shape == (2, 3)
    assert s.logit.shape == (2,) and s.pooled.shape == (2, 128) and s.slice_weights.shape == (2, 3)
    torch.testing.assert_close(s.slice_weights.sum(-1), torch.ones(2))
    assert net.pet_pooled(pet).shape == (2, 128)
    assert net.embed(mri).shape == (2, 3, 128)
    # teacher on PET with fewer slices than MRI still works (query PET, key/value MRI)
    assert net.teacher(mri, pet[:, :2]).slice_weights.shape == (2, 2)


def test_cached_prefix_gives_same_outputs(tiny_weights, tiny_config, randomize):
    net = build_network(tiny_config, tiny_weights).eval()
    randomize(net)
    mri, pet = _batch()
    pm, pp = net.frozen_prefix(mri), net.frozen_prefix(pet)
    assert pm.shape == (2, 3, 197, 64)
    torch.testing.assert_close(net.teacher(pm, pp).logit, net.teacher(mri, pet).logit)
    torch.testing.assert_close(net.student(pm).pooled, net.student(mri).pooled)


def test_gradient_reaches_lora_not_frozen(tiny_weights, tiny_config, randomize):
    net = build_network(tiny_config, tiny_weights).train()
    mri, pet = _batch(seed=1)
    net.teacher(mri, pet).logit.sum().backward()
    grads = {n: p.grad for n, p in net.named_parameters() if "lora_B" in n}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values())
    assert all(p.grad is None for n, p in net.named_parameters() if not p.requires_grad)
    assert net.classifier[0].weight.grad is not None and net.projection[0].weight.grad is not None
    # once B is non-zero, A gets gradient too (through the cached-prefix path as well)
    randomize(net)
    net.zero_grad()
    net.student(net.frozen_prefix(mri)).logit.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora_parameters(net))


def test_set_dropouts(tiny_config):
    net = build_network(tiny_config)
    assert [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout) and m in set(net.projection)] == [0.5, 0.4]
    net.set_dropouts((0.3, 0.2), 0.4)
    assert [m.p for m in net.projection if isinstance(m, torch.nn.Dropout)] == [0.3, 0.2]
    assert [m.p for m in net.classifier if isinstance(m, torch.nn.Dropout)] == [0.4]


def test_small_student_layout(tiny_config):
    paper = build_network(tiny_config)
    small = build_network(tiny_config, student_layout="small")
    count = lambda n: sum(p.numel() for p in n.parameters() if p.requires_grad)  # noqa: E731
    assert count(small) < count(paper)
    assert small.encoder.frozen_blocks == 5
    assert small.student(_batch()[0]).pooled.shape == (2, 128)  # same as the teacher's (feature KD)


def test_build_is_seeded_and_leaves_rng_alone(tiny_config):
    torch.manual_seed(5)
    state = torch.random.get_rng_state()
    a, b = build_network(tiny_config, seed=1), build_network(tiny_config, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_attention_pooling_shapes():
    pool = AttentionPooling(128, 4, 0.1, 2.0).eval()
    q, k = torch.randn(3, 7, 128), torch.randn(3, 9, 128)
    pooled, w = pool(q, k)
    assert pooled.shape == (3, 128) and w.shape == (3, 7)
    torch.testing.assert_close(w.sum(-1), torch.ones(3))


def test_deepcopy_for_frozen_teacher(tiny_config, randomize):
    import copy

    net = build_network(tiny_config)
    randomize(net)
    frozen = copy.deepcopy(net).eval().requires_grad_(False)
    mri = _batch(b=1)[0]
    with torch.no_grad():
        torch.testing.assert_close(frozen.student(mri).logit, net.eval().student(mri).logit)


def test_encoder_forward_matches_timm_and_checkpointing(tiny_weights, randomize):
    enc = load_slice_encoder("tiny", tiny_weights)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(enc(x), enc.trunk.forward_features(x)[:, 0])
    add_lora(enc, 4, 4.0, 0.0, 2)
    randomize(enc)
    out = enc(x)
    out.sum().backward()
    grads = [p.grad.clone() for p in lora_parameters(enc)]
    enc.zero_grad()
    enc.set_grad_checkpointing(True)
    out2 = enc(x)
    out2.sum().backward()
    torch.testing.assert_close(out2, out)
    for g, p in zip(grads, lora_parameters(enc)):
        torch.testing.assert_close(p.grad, g)


def test_cls_token_before_or_after_the_final_norm(tiny_weights, tiny_config):
    """'pre-norm' (the method's default) is the last block's CLS token; 'post-norm' is timm's
    forward_features CLS, i.e. the same token through trunk.norm."""
    import dataclasses

    assert tiny_config.cls_token == "pre-norm"
    pre = build_network(tiny_config, tiny_weights).eval()
    post = build_network(dataclasses.replace(tiny_config, cls_token="post-norm"), tiny_weights).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before, after = pre.encoder(x), post.encoder(x)
        torch.testing.assert_close(after, post.encoder.trunk.forward_features(x)[:, 0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(post.encoder.trunk.norm(before), after, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(before, after, atol=1e-3)
        tokens = pre.encoder.frozen_prefix(x)  # the cached-prefix path agrees
        torch.testing.assert_close(pre.encoder.forward_from_prefix(tokens), before, rtol=1e-5, atol=1e-5)
