"""The frozen-prefix cache gives the same outputs as the images, and respects its budget."""
import torch

from bids_amyloid.config import ModelConfig
from bids_amyloid.models.networks import build_network
from bids_amyloid.train.data import Batch
from bids_amyloid.train.prefix import PrefixCache


def test_cached_prefix_matches_images_and_respects_budget(tiny_weights):
    net = build_network(ModelConfig(backbone="tiny", backbone_weights=tiny_weights), seed=0).eval()
    gen = torch.Generator().manual_seed(0)
    batch = Batch(label=torch.zeros(2), index=torch.arange(2), mri=torch.randn(2, 2, 3, 224, 224, generator=gen),
                  mri_path=["a.npy", "b.npy"])
    with torch.no_grad():
        expected = net.student(batch.mri).logit
        cache = PrefixCache(max_bytes=2**30)
        first = net.student(cache.inputs(net, batch, "mri")).logit
        assert len(cache) == 2
        batch.mri = torch.zeros_like(batch.mri)  # served from the cache, not recomputed
        second = net.student(cache.inputs(net, batch, "mri")).logit
        assert torch.allclose(first, expected, atol=1e-5) and torch.equal(first, second)
        tiny = PrefixCache(max_bytes=0)
        batch.mri = torch.randn(2, 2, 3, 224, 224, generator=gen)
        assert torch.allclose(net.student(tiny.inputs(net, batch, "mri")).logit, net.student(batch.mri).logit,
                              atol=1e-5)
        assert len(tiny) == 0 and tiny.bytes == 0
