"""GPU training throughput of the real ViT-B/16 networks (random weights, random inputs).

Measures, for the teacher step (PET + MRI, phase 0/1) and the student step (phase 2: student
forward/backward + frozen teacher forward), with bf16 autocast and an AdamW step:
time per step, sessions/s, slice images/s through the encoder, peak GPU memory, the FLOPs of
one step (counted by torch.utils.flop_counter) and the MFU against the chip's dense bf16 peak.
Optionally the same with cached frozen-prefix tokens (TrainConfig.cache_frozen, augmentation off).

    python benchmarks/gpu.py [--teacher-batch 6] [--student-batch 10] [--slices 25] [--steps 10]
                             [--peak-tflops 989] [--cached] [--report FILE]
    python benchmarks/gpu.py --cpu-smoke      # tiny backbone on the CPU: checks the script runs

No dataset and no weights are needed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

import torch

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}
"""Dense bf16 peaks (vendor specs, TFLOP/s) by device-name substring."""


def _peak(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _count_flops(fn: Callable[[], None]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def measure(name: str, step: Callable[[], None], *, device: torch.device, steps: int, warmup: int,
            sessions: int, images: int, peak_tflops: float | None) -> dict[str, Any]:
    for _ in range(warmup):
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    per_step = (time.perf_counter() - start) / steps
    flops = _count_flops(step)
    row = {"step": name, "step_s": round(per_step, 4), "sessions_per_s": round(sessions / per_step, 2),
           "slice_images_per_s": round(images / per_step, 1), "tflop_per_step": round(flops / 1e12, 3),
           "achieved_tflops": round(flops / per_step / 1e12, 3)}
    if device.type == "cuda":
        row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    if peak_tflops:
        row["mfu"] = round(flops / per_step / 1e12 / peak_tflops, 4)
    print(json.dumps(row), flush=True)
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bids_amyloid.config import ModelConfig
    from bids_amyloid.models.backbone import SliceEncoder
    from bids_amyloid.models.networks import build_network

    device = torch.device(args.device)
    kind = "tiny" if args.cpu_smoke else "biomedclip"
    torch.manual_seed(0)
    base = SliceEncoder(kind).state_dict()
    teacher = build_network(ModelConfig(backbone=kind), encoder_state=base, seed=0).to(device)
    student = build_network(ModelConfig(backbone=kind), encoder_state=base, seed=1).to(device)
    use_bf16 = device.type == "cuda" and not args.no_bf16
    s, bt, bs = args.slices, args.teacher_batch, args.student_batch
    t_opt = torch.optim.AdamW([p for p in teacher.parameters() if p.requires_grad], lr=1e-5)
    s_opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-5)
    images = {b: torch.randn(b, s, 3, 224, 224, device=device) for b in {bt, bs}}
    pets = {b: torch.randn(b, s, 3, 224, 224, device=device) for b in {bt, bs}}
    y_t, y_s = torch.randint(0, 2, (bt,), device=device).float(), torch.randint(0, 2, (bs,), device=device).float()

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)

    def teacher_step(mri, pet):
        teacher.train()
        with autocast():
            out = teacher.teacher(mri, pet)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out.logit.float(), y_t)
        loss.backward()
        t_opt.step()
        t_opt.zero_grad(set_to_none=True)

    def student_step(mri, t_mri, t_pet):
        student.train()
        teacher.eval()
        with autocast():
            with torch.no_grad():
                t = teacher.teacher(t_mri, t_pet)
            out = student.student(mri)
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(out.logit.float(), y_s)
                    + torch.nn.functional.mse_loss(out.pooled.float(), t.pooled.float()))
        loss.backward()
        s_opt.step()
        s_opt.zero_grad(set_to_none=True)

    common = {"device": device, "steps": args.steps, "warmup": args.warmup,
              "peak_tflops": _peak(device, args.peak_tflops)}
    rows = [
        measure("teacher (phase 0/1)", lambda: teacher_step(images[bt], pets[bt]), sessions=bt, images=2 * bt * s,
                **common),
        measure("student (phase 2, with teacher forward)",
                lambda: student_step(images[bs], images[bs], pets[bs]), sessions=bs, images=3 * bs * s,
                **common),
    ]
    if args.cached:
        with torch.no_grad():
            tok = {b: (teacher.frozen_prefix(images[b]), teacher.frozen_prefix(pets[b])) for b in {bt, bs}}
        rows.append(measure("teacher, cached frozen prefix", lambda: teacher_step(*tok[bt]), sessions=bt,
                            images=2 * bt * s, **common))
        rows.append(measure("student, cached frozen prefix", lambda: student_step(tok[bs][0], *tok[bs]),
                            sessions=bs, images=3 * bs * s, **common))
    info = {"backbone": kind, "device": str(device), "bf16_autocast": use_bf16, "slices": s,
            "teacher_batch": bt, "student_batch": bs, "torch": torch.__version__}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return {"settings": info, "results": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--teacher-batch", type=int, default=6, help="sessions per teacher step (the method: 6)")
    parser.add_argument("--student-batch", type=int, default=10, help="sessions per student step (the method: 10)")
    parser.add_argument("--slices", type=int, default=25)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak for the MFU (default: by GPU name)")
    parser.add_argument("--no-bf16", action="store_true", help="fp32 instead of bf16 autocast")
    parser.add_argument("--cached", action="store_true", help="also measure with cached frozen-prefix tokens")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny backbone, CPU, batch 1, 4 slices, 1 step")
    parser.add_argument("--report", help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.cpu_smoke:
        args.device, args.teacher_batch, args.student_batch, args.slices = "cpu", 1, 1, 4
        args.steps, args.warmup, args.cached = 1, 1, True
    elif args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --cpu-smoke on a CPU machine")
    report = run(args)
    if args.report:
        with open(args.report, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
