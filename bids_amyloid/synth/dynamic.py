"""Dynamic (4-D) PET: frame protocols, tracer kinetics, per-frame head motion, streamed writing.

Frame model (decay-corrected Bq/mL): frame_k = ref * (a_early_k * perfusion + a_late_k * amyloid),
amyloid being the session's static uptake map (pet.uptake_map, SUVR to cerebellar GM) and
perfusion a flow-like map without amyloid specificity (GM high everywhere, cerebellum included).
a_early is a gamma-variate bolus (peak at 2 min; 1e-5 of the peak after 30 min, 1e-9 after
50 min), a_late rises to a plateau (time constant 8 min: 99.8 % at 50 min). a_k is the frame's
mean of the curve, so the duration-weighted mean of the frames inside an SUVR window (all after
50 min) is the static image up to a global scale, while the unweighted mean of all frames of a
0-70 min scan is dominated by the early, perfusion-weighted frames.
"""
from __future__ import annotations

import nibabel as nib
import numpy as np
from nibabel.openers import Opener

from bids_amyloid.synth import deform, pet
from bids_amyloid.synth.anatomy import Source
from bids_amyloid.synth.pet import Tracer

PIB_70 = ((4, 15), (8, 30), (9, 60), (2, 180), (10, 300))  # 33 frames, 4200 s (OASIS-3 PiB)
EARLY_AMPLITUDE, BOLUS_PEAK_S, LATE_TAU_S = 6.0, 120.0, 480.0
REF_DURATION_S = 1200.0  # frame length whose noise pet.acquire's default (0.35) describes
PERFUSION = (1.0, 0.35, 0.05, 0.1, 0.2, 0.1)  # GM, WM, CSF, FAT, SOFT, BONE
MAX_SHIFT_MM, MAX_ROT_DEG = 2.0, 1.5
PROTOCOLS = ("static", "window", "full", "early", "late")
_HEADROOM = 3.0  # int16 range over the noise-free maximum: noisy short frames overshoot it


def _blocks(blocks: tuple[tuple[int, int], ...], start: float = 0.0) -> np.ndarray:
    out, t = [], float(start)
    for n, d in blocks:
        for _ in range(n):
            out.append((t, float(d)))
            t += d
    return np.array(out, dtype=float)


def frames(protocol: str, tracer: Tracer) -> np.ndarray:
    """(n, 2) frame starts and durations (s after injection) of a protocol for this tracer.

    static: the tracer's default static scan (Tracer.window_s); window: one frame over the SUVR
    window; full: PiB 0-70 min in 33 frames, other tracers 4 x 5 min from the window start (as
    ADNI acquires florbetapir); early / late: the two runs of a split scan (early: 0-30 min for
    PiB, 0-20 min otherwise, covering no SUVR window; late: PiB 30-70 min, else as full).
    """
    w0, w1 = tracer.suvr_window_s
    pib = tracer.key == "PiB"
    if protocol == "static":
        return np.array([tracer.window_s], dtype=float)
    if protocol == "window":
        return np.array([[w0, w1 - w0]], dtype=float)
    if protocol == "full":
        return _blocks(PIB_70) if pib else _blocks(((4, 300),), w0)
    if protocol == "early":
        return _blocks(PIB_70)[:25 if pib else 23]
    if protocol == "late":
        return _blocks(((8, 300),), 1800.0) if pib else _blocks(((4, 300),), w0)
    raise ValueError(f"unknown PET protocol {protocol!r}; expected one of {PROTOCOLS}")


def early_curve(fr: np.ndarray) -> np.ndarray:
    """Frame means of EARLY_AMPLITUDE * (t/tp) exp(1 - t/tp) (closed-form integral)."""
    tp = BOLUS_PEAK_S
    prim = lambda t: -np.e * tp * (1.0 + t / tp) * np.exp(-t / tp)  # noqa: E731
    s, d = fr[:, 0], fr[:, 1]
    return EARLY_AMPLITUDE * (prim(s + d) - prim(s)) / d


def late_curve(fr: np.ndarray) -> np.ndarray:
    """Frame means of 1 - exp(-t / LATE_TAU_S)."""
    s, d, tau = fr[:, 0], fr[:, 1], LATE_TAU_S
    return 1.0 - tau * (np.exp(-s / tau) - np.exp(-(s + d) / tau)) / d


def window_weights(fr: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """Seconds of each frame inside the window (the duration weights of a window mean)."""
    return np.clip(np.minimum(fr.sum(1), window[1]) - np.maximum(fr[:, 0], window[0]), 0.0, None)


def covers(fr: np.ndarray, window: tuple[int, int]) -> bool:
    return bool(abs(window_weights(fr, window).sum() - (window[1] - window[0])) < 1e-6)


def perfusion_map(classes: list[np.ndarray]) -> np.ndarray:
    out = np.zeros(classes[0].shape, dtype=np.float32)
    for k, value in enumerate(PERFUSION):
        out += np.float32(value) * classes[k]
    return out


def mix(perf: np.ndarray, amy: np.ndarray, a_early: float, a_late: float) -> np.ndarray:
    return np.float32(a_early) * perf + np.float32(a_late) * amy


def window_map(perf: np.ndarray, amy: np.ndarray, fr: np.ndarray) -> tuple[np.ndarray, float]:
    """Noise-free mean uptake over the given frames (duration-weighted) and their total length."""
    w = fr[:, 1]
    a_e, a_l = (float((w * c).sum() / w.sum()) for c in (early_curve(fr), late_curve(fr)))
    return mix(perf, amy, a_e, a_l), float(w.sum())


def noise_sd(duration_s: float) -> float:
    """Counts grow with the frame length: relative noise ~ 1 / sqrt(duration)."""
    return 0.35 * float(np.sqrt(REF_DURATION_S / duration_s))


def motion(rng: np.random.Generator, fr: np.ndarray, t_ref: float) -> np.ndarray:
    """(n, 6) rigid head motion per frame: tx, ty, tz (mm), rx, ry, rz (deg), relative to the
    pose at time t_ref; a linear drift over the scan plus small frame-to-frame jitter."""
    lim = np.array([MAX_SHIFT_MM] * 3 + [MAX_ROT_DEG] * 3)
    t0, t1 = fr[0, 0], fr[-1].sum()
    t = (fr[:, 0] + fr[:, 1] / 2.0 - t_ref) / (t1 - t0)  # within [-1, 1]
    drift = rng.uniform(-0.8, 0.8, 6) * lim
    return np.clip(t[:, None] * drift + rng.normal(0.0, 0.06, (len(fr), 6)) * lim, -lim, lim)


def motion_matrix(p: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Scanner world -> scanner world: rotation about the head centre, then translation."""
    r = deform.rotation(p[3:])
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = center - r @ center + p[:3]
    return m


def write_dynamic(path, src: Source, perf: np.ndarray, amy: np.ndarray, fr: np.ndarray,
                  grid: deform.Grid, pose: np.ndarray, disp: np.ndarray, rng: np.random.Generator,
                  fwhm_mm: float, ref_bq_ml: float,
                  t_ref: float | None = None) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Write a 4-D int16 NIfTI (scl_slope) frame by frame: one frame in memory at a time.

    `pose` is the head pose at time t_ref (default: the scan's start); other frames move by
    motion(). The slope is fixed up front from the noise-free maximum (with headroom), so no pass
    over the whole series is needed. Returns the (lazily loaded) image and the motion parameters.
    """
    a_e, a_l = early_curve(fr), late_curve(fr)
    peak = float(np.max(a_e * float(perf.max()) + a_l * float(amy.max())))
    slope = peak * ref_bq_ml * _HEADROOM / 32767.0
    params = motion(rng, fr, fr[0, 0] if t_ref is None else t_ref)
    center = pose[:3, :3] @ deform.HEAD_CENTER + pose[:3, 3]
    path.parent.mkdir(parents=True, exist_ok=True)
    with Opener(str(path), "wb") as f:
        for k in range(len(fr)):
            coords = deform.grid_coords(grid, motion_matrix(params[k], center) @ pose, src.affine,
                                        disp)
            vol = pet.acquire(mix(perf, amy, a_e[k], a_l[k]), coords, grid, rng, fwhm_mm,
                              ref_bq_ml, noise_sd(fr[k, 1]))
            del coords
            img = deform.to_image(vol, grid)
            if k == 0:
                hdr = img.header.copy()
                hdr.set_data_shape((*img.shape, len(fr)))
                hdr.set_data_dtype(np.int16)
                hdr.set_slope_inter(slope, 0.0)
                hdr["pixdim"][4] = float(np.median(fr[:, 1]))  # frames are irregular: see sidecar
                hdr["vox_offset"] = 0  # let nibabel place the data after the header
                hdr.write_to(f)
            q = np.clip(np.rint(np.asanyarray(img.dataobj) / np.float32(slope)), 0, 32767)
            f.write(q.astype("<i2").tobytes(order="F"))
    return nib.load(path), params  # type: ignore[return-value]
