"""The latent model: amyloid load -> Centiloid -> label, its MRI and PET correlates, oracle AUCs.

Per subject (A = (age - 72) / 10, u = latent amyloid propensity):
    A ~ N(0, 0.8^2);  u = BETA_AGE * A + z, z ~ N(0, 1)  (z is drawn quasi-randomly per subject so
    that even tiny cohorts hold both classes);  load L = sigmoid(SLOPE * (u - SHIFT)) in (0, 1);
    Centiloid CL = CL_MIN + CL_RANGE * L + e, e ~ N(0, SD_CL^2) per session (what the dataset
    reports: biology and measurement blur the load);  label = CL > 20.6.
    Longitudinally u grows by U_PER_YEAR and A by 0.1 per year.
MRI-visible (per session): global atrophy g = GAMMA_AGE * A + e_g (e_g ~ N(0, SD_G), per subject);
    regional signal y_r = effect_mri * L + n_r, ventricle signal y_v = effect_mri * L + n_v
    (n_r, n_v ~ N(0, SD_R / SD_V), per subject: natural anatomical variability). The images show
    monotone, invertible transforms of g, y_r + 0.5 g (medial parietal GM loss) and y_v + g
    (ventricle expansion), so an oracle reading the MRI perfectly knows (g, y_r, y_v).
PET: the image's cortical composite SUVR is the tracer's inverse Centiloid transform of
    CL_pet = CL + N(0, (PET_SD[tracer] / effect_pet)^2) (regional heterogeneity and measurement
    noise between the dataset's Centiloid pipeline and this image).
Oracle AUCs (one baseline session drawn from this model): score = P(positive | observation),
    computed by numerical integration over u on a grid, evaluated on ORACLE_DRAWS fresh draws.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, ndtri

THRESHOLD = 20.6
SD_A, BETA_AGE, SLOPE, SHIFT, U_PER_YEAR = 0.8, 0.35, 2.5, 0.85, 0.08
CL_MIN, CL_RANGE, SD_CL = -10.0, 135.0, 4.0
GAMMA_AGE, SD_G, SD_R, SD_V = 0.6, 0.4, 0.8, 0.8
PET_SD = {"PiB": 5.0, "AV45": 8.0, "FBB": 8.0}  # Centiloid units at effect_pet = 1
ORACLE_DRAWS, ORACLE_SEED = 200_000, 20_206
_GOLDEN = 0.6180339887498949


@dataclass(frozen=True)
class SubjectLatent:
    age0: float
    sex: str
    u0: float
    e_g: float
    n_r: float
    n_v: float
    head_scale: float


@dataclass(frozen=True)
class SessionState:
    age: float
    load: float
    centiloid: float
    label: int
    global_atrophy: float  # g
    regional_signal: float  # y_r
    ventricle_signal: float  # y_v
    thinning_global: float  # fraction of GM lost everywhere
    thinning_regional: float  # extra fraction lost in the medial parietal ROI
    ventricle_mm: float  # ventricle expansion


def load_of(u: Any) -> np.ndarray:
    return np.asarray(expit(SLOPE * (np.asarray(u) - SHIFT)))


def centiloid_of(load: Any) -> np.ndarray:
    return CL_MIN + CL_RANGE * np.asarray(load)


def draw_subject(rng: np.random.Generator, index: int, phase: float) -> SubjectLatent:
    a = rng.normal(0.0, SD_A)
    # Weyl sequence on the quantiles: evenly spread z for any cohort size, subject i fixed by i.
    q = (phase + index * _GOLDEN) % 1.0
    z = float(ndtri(min(max(q, 1e-6), 1 - 1e-6)))
    return SubjectLatent(
        age0=72.0 + 10.0 * a, sex=str(rng.choice(["F", "M"], p=[0.55, 0.45])),
        u0=BETA_AGE * a + z, e_g=rng.normal(0.0, SD_G), n_r=rng.normal(0.0, SD_R),
        n_v=rng.normal(0.0, SD_V), head_scale=float(rng.uniform(0.9, 1.1)))


def session_state(s: SubjectLatent, years: float, effect_mri: float, cl_noise: float) -> SessionState:
    """cl_noise: a N(0, 1) draw for this session's reported Centiloid."""
    a = (s.age0 - 72.0) / 10.0 + years / 10.0
    load = float(load_of(s.u0 + U_PER_YEAR * years))
    cl = float(centiloid_of(load)) + SD_CL * cl_noise
    g = GAMMA_AGE * a + s.e_g
    y_r = effect_mri * load + s.n_r
    y_v = effect_mri * load + s.n_v
    return SessionState(
        age=s.age0 + years, load=load, centiloid=cl, label=int(cl > THRESHOLD),
        global_atrophy=g, regional_signal=y_r, ventricle_signal=y_v,
        thinning_global=float(0.15 * expit(1.2 * g - 0.5)),
        thinning_regional=float(0.35 * expit(1.5 * (y_r + 0.5 * g) - 1.5)),
        ventricle_mm=float(3.5 * expit(1.2 * (y_v + g) - 0.5)))


def pet_centiloid(rng: np.random.Generator, cl: float, tracer: str, effect_pet: float) -> float:
    return float(cl + rng.normal(0.0, PET_SD[tracer] / max(effect_pet, 1e-6)))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half."""
    from scipy.stats import rankdata

    labels = np.asarray(labels, dtype=bool)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


_U_GRID = np.linspace(-6.0, 6.0, 401)
_U_PRIOR_SD = float(np.sqrt(BETA_AGE**2 * SD_A**2 + 1.0))


def _p_pos_given_u() -> np.ndarray:
    from scipy.special import ndtr

    return ndtr((centiloid_of(load_of(_U_GRID)) - THRESHOLD) / SD_CL)


def _mri_table(m_axis: np.ndarray, y_axis: np.ndarray, sd_prior: float, effect: float,
               sd_obs: float) -> np.ndarray:
    """P(positive | prior mean m of u, observation y ~ N(effect * L(u), sd_obs^2)), (M, Y)."""
    logw = (-0.5 * ((_U_GRID - m_axis[:, None, None]) / sd_prior) ** 2
            - 0.5 * ((y_axis[None, :, None] - effect * load_of(_U_GRID)) / sd_obs) ** 2)
    w = np.exp(logw - logw.max(-1, keepdims=True))
    return (w * _p_pos_given_u()).sum(-1) / w.sum(-1)


def _pet_table(obs_axis: np.ndarray, sd_obs: float) -> np.ndarray:
    """P(CL > threshold | observed PET Centiloid), prior of CL from the model (grid integration)."""
    from scipy.stats import norm

    cl_axis = np.linspace(CL_MIN - 6 * SD_CL, CL_MIN + CL_RANGE + 6 * SD_CL, 1200)
    prior = (norm.pdf(_U_GRID, 0.0, _U_PRIOR_SD)[None, :]
             * norm.pdf(cl_axis[:, None], centiloid_of(load_of(_U_GRID))[None, :], SD_CL)).sum(1)
    lik = norm.pdf(obs_axis[:, None], cl_axis[None, :], sd_obs) * prior[None, :]
    return lik[:, cl_axis > THRESHOLD].sum(1) / np.maximum(lik.sum(1), 1e-300)


def mri_posterior(g: Any, y_r: Any, y_v: Any, effect_mri: float) -> np.ndarray:
    """P(positive | the MRI-visible latents g, y_r, y_v) of each session: what a reader who
    measured the images perfectly would say (the Bayes-optimal MRI score)."""
    from scipy.interpolate import RegularGridInterpolator

    g, y_r, y_v = (np.asarray(v, dtype=float) for v in (g, y_r, y_v))
    # (y_r, y_v) -> their precision-weighted mean; u | g is Gaussian (both linear in age).
    prec = 1.0 / SD_R**2 + 1.0 / SD_V**2
    y = (y_r / SD_R**2 + y_v / SD_V**2) / prec
    var_g = GAMMA_AGE**2 * SD_A**2 + SD_G**2
    cov = BETA_AGE * GAMMA_AGE * SD_A**2
    m = cov / var_g * g
    sd_ug = float(np.sqrt(_U_PRIOR_SD**2 - cov**2 / var_g))
    m_axis = np.linspace(m.min() - 1e-6, m.max() + 1e-6, 61)
    y_axis = np.linspace(y.min() - 1e-6, y.max() + 1e-6, 201)
    table = _mri_table(m_axis, y_axis, sd_ug, effect_mri, float(np.sqrt(1.0 / prec)))
    return RegularGridInterpolator((m_axis, y_axis), table)(np.stack([m, y], 1))


@functools.lru_cache(maxsize=16)
def oracle_aucs(effect_mri: float, effect_pet: float, tracers: tuple[str, ...],
                n: int = ORACLE_DRAWS, seed: int = ORACLE_SEED) -> dict[str, float]:
    """Bayes-optimal AUCs of a baseline session from (a) the MRI correlate, (b) PET alone.

    The posterior is tabulated on a fine grid of the observation (MRI: the precision-weighted
    mean of y_r and y_v, and the prior mean of u that g implies; PET: the observed Centiloid per
    tracer), interpolated at each of n simulated sessions, and scored by the ROC AUC.
    """
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, SD_A, n)
    u = BETA_AGE * a + rng.normal(0.0, 1.0, n)
    load = load_of(u)
    cl = centiloid_of(load) + rng.normal(0.0, SD_CL, n)
    label = cl > THRESHOLD
    g = GAMMA_AGE * a + rng.normal(0.0, SD_G, n)
    y_r = effect_mri * load + rng.normal(0.0, SD_R, n)
    y_v = effect_mri * load + rng.normal(0.0, SD_V, n)
    tracer = rng.choice(len(tracers), n)
    pet_sd = np.array([PET_SD[t] for t in tracers]) / max(effect_pet, 1e-6)
    cl_pet = cl + rng.normal(0.0, 1.0, n) * pet_sd[tracer]

    p_mri = mri_posterior(g, y_r, y_v, effect_mri)

    # PET: one 1-D table per tracer.
    p_pet = np.empty(n)
    obs_axis = np.linspace(cl_pet.min(), cl_pet.max(), 801)
    for k in range(len(tracers)):
        sel = tracer == k
        p_pet[sel] = np.interp(cl_pet[sel], obs_axis, _pet_table(obs_axis, float(pet_sd[k])))
    return {"mri": round(auc(p_mri, label), 4), "pet": round(auc(p_pet, label), 4),
            "prevalence": round(float(label.mean()), 4)}
