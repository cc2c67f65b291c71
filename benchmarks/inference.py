"""Benchmark of participant-level inference for one session: fold-ensemble prediction, saliency
(Grad-CAM + input gradient) and the saliency volumes, on 2 CPU cores, for the 'tiny' backbone and
for the real ViT-B/16 size (random weights: speed does not depend on the values).

Each backbone runs in a fresh process pinned to ``--cpus`` cores (peak RSS is that process's).
The same process measures the CPU's matmul throughput (2048^3, fp32 and bf16) and counts the
FLOPs of the forward + backward passes actually run (``torch.utils.flop_counter``), so the time
can be related to what the CPU can do. bf16 on the CPU is timed and its accuracy against fp32
is reported (probabilities and map correlation), not assumed.

    python benchmarks/inference.py                       # tiny and biomedclip, 5 folds, 2 cores
    python benchmarks/inference.py --backbones tiny --folds 3
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def matmul_gflops(dtype_name: str, n: int = 2048, repeats: int = 5) -> float:
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def count_flops(fn) -> float:
    """FLOPs of the matmul-like ops ``fn`` runs, forward and backward (torch's flop formulas;
    FlopCounterMode itself cannot follow autograd.grad with explicit inputs)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Counter(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                Counter.total += formula(*args, **kwargs, out_val=out)
            elif func._overloadpacket is torch.ops.aten.linear:  # not decomposed under inference_mode
                x, w = args[0], args[1]
                Counter.total += 2 * x.numel() // x.shape[-1] * w.shape[0] * w.shape[1]
            elif func._overloadpacket is torch.ops.aten.scaled_dot_product_attention:
                q, k = args[0], args[1]  # [B, H, L, E] x [B, H, S, E]: QK^T and AV
                Counter.total += 4 * q.numel() // q.shape[-1] * k.shape[-2] * q.shape[-1]
            return out

    with Counter():
        fn()
    return float(Counter.total)


def _timed(fn, repeats: int = 1):
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def worker(kind: str, folds: int, repeats: int) -> dict:
    import numpy as np
    import torch

    from bids_amyloid.config import Config, ModelConfig
    from bids_amyloid.infer.ensemble import run_ensemble
    from bids_amyloid.infer.saliency import NativeGrid, write_saliency
    from bids_amyloid.models.bundle import load_bundle, load_students
    from bids_amyloid.models.bundle_write import save_bundle
    from bids_amyloid.models.inputs import select_slices, to_model_input
    from bids_amyloid.models.networks import build_network
    from bids_amyloid.models.weights import convert_checkpoint, write_random_checkpoint
    from bids_amyloid.preprocess.slices import extract_slices, slice_indices, slice_metadata
    from nilearn import datasets

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    result: dict = {"backbone": kind, "folds": folds, "threads": torch.get_num_threads(),
                    "matmul_fp32_gflops": matmul_gflops("float32"), "matmul_bf16_gflops": matmul_gflops("bfloat16")}
    with tempfile.TemporaryDirectory(prefix="infer-bench-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        weights = convert_checkpoint(write_random_checkpoint(tmp / "ckpt.safetensors", kind), tmp / "w", kind)
        config = Config(bids_dir=tmp / "bids", output_dir=tmp / "out", analysis_level="group",
                        model=ModelConfig(backbone=kind))
        states = []
        for fold in range(folds):
            net = build_network(config.model, weights, seed=fold)
            with torch.no_grad():
                for name, p in net.named_parameters():
                    if "lora_B" in name:
                        p.normal_(0, 0.02)
            states.append(net.state_dict())
            del net
        save_bundle(tmp / "models", config=config, students=states, thresholds=[0.5] * folds)
        del states
        result["setup_s"] = time.perf_counter() - start
        result["load_s"], students = _timed(lambda: load_students(load_bundle(tmp / "models"), "cpu", weights))
        for net in students:
            net.requires_grad_(False)

        template = datasets.load_mni152_template(resolution=1)
        volume = np.asarray(template.get_fdata(), dtype=np.float32)
        volume /= volume.max()
        indices = slice_indices(volume.shape[0], 40, (0.4, 0.6))
        slices, pads = extract_slices(volume, indices, 224)
        sidecar = slice_metadata(indices, slices, volume.shape[1:3], pads, 224, (0.4, 0.6))
        chosen = select_slices(sidecar["SliceMean"], 25, 0.01)
        x = to_model_input(slices[chosen].astype(np.float16), "T1w")
        methods = ("gradcam", "gradient")

        run_ensemble(students, x[:2])  # warm-up (allocator, kernels)
        run_ensemble(students, x[:2], cpu_bf16=True)
        # fp32 and bf16 (autocast on the CPU) back to back, so both see the same machine load
        runs = {}
        for label, chosen_methods in (("predict", ()), ("predict_gradcam", ("gradcam",)),
                                      ("predict_saliency", methods)):
            for prefix, bf16_flag in (("", False), ("bf16_", True)):
                result[f"{prefix}{label}_s"], runs[prefix + label] = _timed(
                    lambda: run_ensemble(students, x, methods=chosen_methods, cpu_bf16=bf16_flag), repeats)
        plain, full, bf16 = runs["predict"], runs["predict_saliency"], runs["bf16_predict_saliency"]

        # volumes: template map + regions + native map (template grid as a stand-in native grid)
        import ants

        ref = tmp / "native.nii.gz"
        template.to_filename(str(ref))
        identity = tmp / "identity.mat"
        ants.write_transform(ants.create_ants_transform(transform_type="AffineTransform", dimension=3), str(identity))
        native = NativeGrid(ref, None, (str(identity),), (False,))

        def write():
            for m in methods:
                write_saliency(out_dir=tmp / "out", subject="01", session="01", contrast="T1w", method=m,
                               slice_maps=full.maps[m], x_index=[indices[i] for i in chosen], slice_sidecar=sidecar,
                               native=native, sources=["bench"], extra={})

        write()  # first call loads the mask and the atlas (cached per process)
        result["volumes_s"], _ = _timed(write)

        # FLOPs actually computed (forward + backward), counted on 5 slices and scaled to 25
        # (everything but the small pooling head is per slice)
        scale = len(chosen) / 5 / 1e9
        result["saliency_pass_gflop"] = count_flops(lambda: run_ensemble(students, x[:5], methods=methods)) * scale
        result["predict_pass_gflop"] = count_flops(lambda: run_ensemble(students, x[:5])) * scale

        # bf16 accuracy against fp32
        result["bf16_max_abs_dprob"] = float(np.abs(bf16.probabilities - full.probabilities).max())
        for m in methods:
            result[f"bf16_{m}_corr"] = float(np.corrcoef(bf16.maps[m].ravel(), full.maps[m].ravel())[0, 1])
        result["fp32_vs_plain_max_abs_dprob"] = float(np.abs(plain.probabilities - full.probabilities).max())
    result["session_total_s"] = result["predict_saliency_s"] + result["volumes_s"]
    result["achieved_gflops"] = result["saliency_pass_gflop"] / result["predict_saliency_s"]
    result["fraction_of_matmul_peak"] = result["achieved_gflops"] / result["matmul_fp32_gflops"]
    result["bf16_achieved_gflops"] = result["saliency_pass_gflop"] / result["bf16_predict_saliency_s"]
    result["bf16_fraction_of_matmul_peak"] = result["bf16_achieved_gflops"] / result["matmul_bf16_gflops"]
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbones", nargs="+", default=["tiny", "biomedclip"], choices=["tiny", "biomedclip"])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--cpus", type=int, default=2, help="cores the worker is pinned to (default 2)")
    p.add_argument("--repeats", type=int, default=1, help="timed repetitions (best is kept)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.folds, args.repeats)))
        return 0
    cpus = sorted(os.sched_getaffinity(0))[: args.cpus]
    env = {**os.environ, "OMP_NUM_THREADS": str(len(cpus)), "MKL_NUM_THREADS": str(len(cpus)),
           "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(len(cpus))}
    print(f"cores used: {cpus}; load average before: {os.getloadavg()[0]:.2f}")
    results = []
    for kind in args.backbones:
        cmd = [sys.executable, __file__, "--worker", kind, "--folds", str(args.folds), "--repeats", str(args.repeats)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              preexec_fn=lambda: os.sched_setaffinity(0, cpus))
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"\n{kind} ({r['folds']} folds, {r['threads']} threads, 25 slices):")
        print(f"  load bundle {r['load_s']:.1f} s | predict only {r['predict_s']:.1f} s | + Grad-CAM "
              f"{r['predict_gradcam_s']:.1f} s | + Grad-CAM + input gradient {r['predict_saliency_s']:.1f} s | "
              f"volumes (template, regions, native) {r['volumes_s']:.1f} s")
        print(f"  one session (prediction + saliency + volumes): {r['session_total_s']:.1f} s; "
              f"peak RSS {r['peak_rss_mb']:.0f} MB")
        print(f"  matmul 2048^3: {r['matmul_fp32_gflops']:.0f} GFLOP/s fp32, {r['matmul_bf16_gflops']:.0f} bf16")
        print(f"  FLOPs: prediction pass {r['predict_pass_gflop']:.0f} GFLOP, prediction + saliency pass "
              f"{r['saliency_pass_gflop']:.0f} GFLOP -> {r['achieved_gflops']:.0f} GFLOP/s = "
              f"{r['fraction_of_matmul_peak']:.0%} of the fp32 matmul rate")
        print(f"  bf16 autocast on CPU: predict only {r['bf16_predict_s']:.1f} s | + Grad-CAM "
              f"{r['bf16_predict_gradcam_s']:.1f} s | + both {r['bf16_predict_saliency_s']:.1f} s; "
              f"({r['bf16_achieved_gflops']:.0f} GFLOP/s = {r['bf16_fraction_of_matmul_peak']:.0%} of the bf16 "
              f"matmul rate); max |dp| {r['bf16_max_abs_dprob']:.4f}; "
              f"map correlation gradcam {r['bf16_gradcam_corr']:.4f}, gradient {r['bf16_gradient_corr']:.4f}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
