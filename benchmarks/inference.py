"""Benchmark of participant-level inference for one session: fold-ensemble prediction, saliency
(Grad-CAM + input gradient) and the saliency volumes (template, regions, native warp), on 2 CPU
cores, for the 'tiny' backbone and the real ViT-B/16 size (random weights: speed does not depend
on the values).

Per backbone, one bundle is written once; then each measurement runs in a fresh process pinned
to ``--cpus`` cores:

* ``session``: what a participant job does, in its order and default settings (load the bundle,
  choose the precision, predict with both maps, write the volumes); its peak RSS is the figure
  that decides how many jobs fit on a node;
* ``parts``: each part of the pass timed and its FLOPs counted (``torch.utils.flop_counter``
  formulas), in float32 and in bf16 autocast, against the CPU's measured matmul rates; agreement
  of bf16 with float32 and of the ensemble-logit gradient with the per-fold one;
* with ``--baseline REV``: the same session with ``infer/ensemble.py`` as it was at git revision
  REV (before / after), and the largest differences between the two implementations' outputs.

    python benchmarks/inference.py                                # tiny and biomedclip, 5 folds
    python benchmarks/inference.py --backbones biomedclip --baseline 91314c7
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("gradcam", "gradient")


def matmul_gflops(dtype_name: str, n: int = 2048, repeats: int = 5) -> float:
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    return 2 * n**3 / _timed(lambda: torch.mm(a, b), repeats)[0] / 1e9


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


def _reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM back to the current RSS
    except OSError:
        pass


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------------------------
# setup (once per backbone, in the parent)


def prepare(kind: str, folds: int, folder: Path) -> None:
    """A bundle of ``folds`` students with non-zero LoRA, its weights folder and one session's
    slice input (the MNI template's sagittal slices) and native grid, under ``folder``."""
    import ants
    import numpy as np
    import torch
    from nilearn import datasets

    from bids_amyloid.config import Config, ModelConfig
    from bids_amyloid.models.bundle_write import save_bundle
    from bids_amyloid.models.networks import build_network
    from bids_amyloid.models.weights import convert_checkpoint, write_random_checkpoint
    from bids_amyloid.preprocess.slices import extract_slices, slice_indices, slice_metadata

    weights = convert_checkpoint(write_random_checkpoint(folder / "ckpt.safetensors", kind), folder / "w", kind)
    config = Config(bids_dir=folder / "bids", output_dir=folder / "out", analysis_level="group",
                    model=ModelConfig(backbone=kind))
    states = []
    for fold in range(folds):
        net = build_network(config.model, weights, seed=fold)
        with torch.no_grad():
            for name, p in net.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.02)
        states.append(net.trainable_state_dict())
        base = net.base_state_dict()
    save_bundle(folder / "models", config=config, students=states, thresholds=[0.5] * folds, backbone_state=base)
    template = datasets.load_mni152_template(resolution=1)
    template.to_filename(str(folder / "native.nii.gz"))  # stand-in native grid
    ants.write_transform(ants.create_ants_transform(transform_type="AffineTransform", dimension=3),
                         str(folder / "identity.mat"))
    volume = np.asarray(template.get_fdata(), dtype=np.float32)
    volume /= volume.max()
    indices = slice_indices(volume.shape[0], 40, (0.4, 0.6))
    slices, pads = extract_slices(volume, indices, 224)
    np.save(folder / "slices.npy", slices.astype(np.float16))
    meta = slice_metadata(indices, slices, volume.shape[1:3], pads, 224, (0.4, 0.6))
    (folder / "slices.json").write_text(json.dumps(meta))


# --------------------------------------------------------------------------------------------
# workers (fresh processes)


def _ensemble_module(baseline: str | None):
    """``bids_amyloid.infer.ensemble`` as it is, or as it was at git revision ``baseline``."""
    if not baseline:
        from bids_amyloid.infer import ensemble

        return ensemble
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{baseline}:bids_amyloid/infer/ensemble.py"],
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="ensemble-")) / "ensemble_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("ensemble_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _run(module, students, x, methods, bf16: bool, **options):
    keyword = "cpu_bf16" if "cpu_bf16" in module.run_ensemble.__code__.co_varnames else "bf16"
    return module.run_ensemble(students, x, methods=methods, **{keyword: bf16}, **options)


def _session_input(folder: Path):
    import numpy as np

    from bids_amyloid.models.inputs import select_slices, to_model_input

    meta = json.loads((folder / "slices.json").read_text())
    chosen = select_slices(meta["SliceMean"], 25, 0.01)
    x = to_model_input(np.load(folder / "slices.npy")[chosen], "T1w")
    return x, meta, [meta["TemplateXIndex"][i] for i in chosen]


def session_worker(folder: Path, out: Path, baseline: str | None) -> dict:
    """One participant session as the app runs it, peak RSS from before the bundle is read."""
    import numpy as np
    import torch

    from bids_amyloid.bids.derivatives import Derivatives
    from bids_amyloid.infer.saliency import NativeGrid, write_saliency
    from bids_amyloid.models.bundle import load_bundle, load_students
    from bids_amyloid.config import Config, ModelConfig
    from bids_amyloid.infer.loading import load_model
    from bids_amyloid.models.device import cpu_has_bf16

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    module = _ensemble_module(baseline)
    x, meta, x_index = _session_input(folder)
    result: dict = {"impl": baseline or "current"}
    # per-process costs that are not the session's: the model libraries' import, and the template,
    # mask and atlas that preprocessing loads first in a participant job
    result["import_s"], _ = _timed(lambda: __import__("open_clip.timm_model"))
    from bids_amyloid.infer import regions, volumes
    from bids_amyloid.space.template import template_mask_array

    result["template_atlas_s"], _ = _timed(lambda: (volumes.template_grid(), template_mask_array(),
                                                    regions.load_atlas()))
    result["rss_before_mb"] = _peak_rss_mb()
    _reset_peak_rss()
    if baseline:  # as the app loaded models then: bf16 wherever oneDNN reports native bf16
        start = time.perf_counter()
        students = load_students(load_bundle(folder / "models"), "cpu", folder / "w")
        for net in students:
            net.requires_grad_(False)
        result["load_s"] = time.perf_counter() - start
        chosen = "bf16" if cpu_has_bf16() else "float32"
    else:  # the app's own path: load once, probe the precision
        config = Config(bids_dir=folder / "bids", output_dir=folder / "out", analysis_level="participant",
                        model_path=folder / "models", model=ModelConfig(backbone_weights=folder / "w"))
        start = time.perf_counter()
        model = load_model(config, "T1w")
        students, chosen = model.students, model.precision
        result["load_s"] = time.perf_counter() - start  # includes the precision probe
    result["precision"] = chosen
    result["rss_loaded_mb"] = _peak_rss_mb()
    result["predict_saliency_s"], maps = _timed(lambda: _run(module, students, x, METHODS, chosen == "bf16"))
    result["rss_after_pass_mb"] = _peak_rss_mb()
    np.savez(out, logits=maps.logits, **maps.maps)
    probabilities = maps.probabilities
    native = NativeGrid(folder / "native.nii.gz", None, (str(folder / "identity.mat"),))
    session = Derivatives(folder / f"out-{os.getpid()}").session("01", "01")
    start = time.perf_counter()
    write_saliency(session=session, contrast="T1w", maps=maps.maps, x_index=x_index, slice_sidecar=meta,
                   native=native, sources=["bench"], extra={})
    result["volumes_s"] = time.perf_counter() - start
    result["session_s"] = result["load_s"] + result["predict_saliency_s"] + result["volumes_s"]
    result["peak_rss_mb"] = _peak_rss_mb()
    result["probabilities"] = probabilities.tolist()
    return result


def parts_worker(folder: Path, repeats: int) -> dict:
    """Each part of the pass, float32 and bf16, with FLOPs; agreement figures."""
    import numpy as np
    import torch

    from bids_amyloid.infer import ensemble
    from bids_amyloid.models.bundle import load_bundle, load_students
    from bids_amyloid.models.device import bf16_autocast

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    students = load_students(load_bundle(folder / "models"), "cpu", folder / "w")
    for net in students:
        net.requires_grad_(False)
    x, _, _ = _session_input(folder)
    depth = ensemble.shared_prefix_depth(students)
    r: dict = {"threads": torch.get_num_threads(), "slices": int(x.shape[0]), "folds": len(students),
               "matmul_gflops": {"float32": matmul_gflops("float32"), "bf16": matmul_gflops("bfloat16")}}

    def prefix(x, bf16):
        with torch.no_grad(), bf16_autocast(x.device, bf16):
            return ensemble._prefix(students[0].encoder, x, depth)

    def run(methods, **options):
        return lambda x, bf16: ensemble.run_ensemble(students, x, methods=methods, bf16=bf16, **options)

    passes = {"prefix": prefix, "predict": run(()), "gradcam": run(("gradcam",)), "both_folds": run(METHODS),
              "both_ensemble": run(METHODS, gradient_of="ensemble")}
    for bf16 in (False, True):
        passes["both_folds"](x[:2], bf16)  # warm-up (allocator, kernels)
    outputs = {}
    for precision in PRECISIONS:
        for name, fn in passes.items():
            r[f"{name}_{precision}_s"], outputs[name, precision] = _timed(lambda: fn(x, precision == "bf16"), repeats)
    for name, fn in passes.items():  # counted on 5 slices, scaled: all but the small pooling head is per slice
        r[f"{name}_gflop"] = count_flops(lambda: fn(x[:5], False)) * x.shape[0] / 5 / 1e9
    f32, b16 = outputs["both_folds", "float32"], outputs["both_folds", "bf16"]
    r["bf16_max_abs_dprob"] = float(np.abs(f32.probabilities - b16.probabilities).max())
    for method in METHODS:
        r[f"bf16_{method}_corr"] = _corr(f32.maps[method], b16.maps[method])
    for precision in PRECISIONS:
        r[f"ensemble_gradient_corr_{precision}"] = _corr(outputs["both_folds", precision].maps["gradient"],
                                                         outputs["both_ensemble", precision].maps["gradient"])
    return r


def _corr(a, b) -> float:
    import numpy as np

    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


# --------------------------------------------------------------------------------------------
# parent: setup, workers, tables

PRECISIONS = ("float32", "bf16")
PARTS = (  # label, pass measured, pass subtracted
    ("shared prefix forward (patch embedding + frozen blocks)", "prefix", None),
    ("per-fold blocks + heads forward, all folds", "predict", "prefix"),
    ("Grad-CAM backward (last block, all folds)", "gradcam", "predict"),
    ("input-gradient backward, per fold (default)", "both_folds", "gradcam"),
    ("input-gradient backward, ensemble mean logit", "both_ensemble", "gradcam"),
)


def _spawn(args: list[str], cpus: list[int]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(len(cpus)), "MKL_NUM_THREADS": str(len(cpus)),
           "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(len(cpus))}
    proc = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True,
                          preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _print_parts(p: dict, sessions: list[dict]) -> None:
    peak = p["matmul_gflops"]
    print(f"  matmul 2048^3: {peak['float32']:.0f} GFLOP/s float32, {peak['bf16']:.0f} bf16; "
          f"{p['folds']} folds, {p['slices']} slices, {p['threads']} threads")
    print(f"  {'part':58s} {'GFLOP':>7s} | {'fp32 s':>7s} {'% peak':>6s} | {'bf16 s':>7s} {'% peak':>6s}")
    for label, name, minus in PARTS:
        flop = p[f"{name}_gflop"] - (p[f"{minus}_gflop"] if minus else 0.0)
        cells = []
        for precision in PRECISIONS:
            t = p[f"{name}_{precision}_s"] - (p[f"{minus}_{precision}_s"] if minus else 0.0)
            cells.append(f"{t:7.2f} {flop / max(t, 1e-9) / peak[precision]:6.0%}")
        print(f"  {label:58s} {flop:7.0f} | {' | '.join(cells)}")
    for s in sessions:
        print(f"  [{s['impl']}] per process: import timm + open_clip {s['import_s']:.1f} s, template + mask + atlas "
              f"{s['template_atlas_s']:.1f} s")
        print(f"  [{s['impl']}] session: load (+ precision probe) {s['load_s']:.1f} s -> {s['precision']}, prediction + both maps {s['predict_saliency_s']:.1f} s, volumes (template, "
              f"regions, native warp) {s['volumes_s']:.1f} s = {s['session_s']:.1f} s; peak RSS {s['peak_rss_mb']:.0f} MB "
              f"(loaded {s['rss_loaded_mb']:.0f}, after the pass {s['rss_after_pass_mb']:.0f}, "
              f"imports {s['rss_before_mb']:.0f})")
    print(f"  prediction only: {p['predict_float32_s']:.1f} s float32, {p['predict_bf16_s']:.1f} s bf16")
    print(f"  bf16 vs float32: max |dp| {p['bf16_max_abs_dprob']:.4f}, map correlation Grad-CAM "
          f"{p['bf16_gradcam_corr']:.4f}, input gradient {p['bf16_gradient_corr']:.4f}")
    print(f"  ensemble-logit vs per-fold input gradient: correlation {p['ensemble_gradient_corr_float32']:.4f} "
          f"(float32), {p['ensemble_gradient_corr_bf16']:.4f} (bf16)")


def _compare(before: Path, after: Path) -> dict:
    import numpy as np

    a, b = np.load(before), np.load(after)
    pa, pb = 1 / (1 + np.exp(-a["logits"])), 1 / (1 + np.exp(-b["logits"]))
    return {"max_abs_dprob": float(np.abs(pa - pb).max()), **{f"{m}_corr": _corr(a[m], b[m]) for m in METHODS}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbones", nargs="+", default=["tiny", "biomedclip"], choices=["tiny", "biomedclip"])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--cpus", type=int, default=2, help="cores the workers are pinned to (default 2)")
    p.add_argument("--repeats", type=int, default=1, help="timed repetitions of each part (best is kept)")
    p.add_argument("--baseline", help="git revision whose infer/ensemble.py to run as 'before'")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--worker", nargs=3, metavar=("KIND", "FOLDER", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        mode, folder, out = args.worker
        baseline = mode.split("=", 1)[1] if mode.startswith("session=") else None
        r = parts_worker(Path(folder), args.repeats) if mode == "parts" else session_worker(Path(folder), Path(out), baseline)
        print(json.dumps(r))
        return 0
    cpus = sorted(os.sched_getaffinity(0))[: args.cpus]
    print(f"cores used: {cpus}; load average before: {os.getloadavg()[0]:.2f}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="infer-bench-") as tmp:
        for kind in args.backbones:
            folder = Path(tmp) / kind
            folder.mkdir()
            prepare(kind, args.folds, folder)
            sessions = [_spawn(["--worker", "session=", str(folder), str(folder / "after.npz")], cpus)]
            if args.baseline:
                sessions.append(_spawn(["--worker", f"session={args.baseline}", str(folder),
                                        str(folder / "before.npz")], cpus))
            parts = _spawn(["--worker", "parts", str(folder), "-", "--repeats", str(args.repeats)], cpus)
            results[kind] = {"parts": parts, "sessions": sessions}
            print(f"\n{kind}:")
            _print_parts(parts, sessions)
            if args.baseline:
                results[kind]["before_vs_after"] = d = _compare(folder / "before.npz", folder / "after.npz")
                print(f"  before ({args.baseline}) vs after: max |dp| {d['max_abs_dprob']:.2e}, map correlation "
                      f"Grad-CAM {d['gradcam_corr']:.6f}, input gradient {d['gradient_corr']:.6f}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
