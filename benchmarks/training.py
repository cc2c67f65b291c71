"""Training benchmarks (CPU).

1. Cross-validated accuracy on a preprocessed synthetic cohort, with ablations::

       python benchmarks/training.py cv OUT_DIR [--bids BIDS_DIR] [--ablations baseline,hard,...]
           [--epochs 3,2,6] [--folds 5] [--input-slices 25] [--backbone tiny] [--report FILE]

   OUT_DIR is a participant-level output (slice caches) of a cohort from ``bids_amyloid.synth``;
   BIDS_DIR defaults to the SourceDatasets URL in OUT_DIR/dataset_description.json. Each
   ablation runs the real group level (``run_group``) in a child process, in its own folder under
   ``--bench-dir`` (default OUT_DIR/../bench-training) whose ``sub-*`` folders link to OUT_DIR's, and
   reports the pooled out-of-fold AUC with its bootstrap 95% CI for the teacher (PET + MRI) and
   the student (MRI only), next to the generator's oracle AUCs (``sourcedata/synth/truth.json``),
   the out-of-fold ECE before and after each fold's calibration (with CIs), the rule-out /
   rule-in zones (share of sessions, NPV / PPV), plus wall time and peak RSS. The
   'leave-site-out' run (a cohort generated with ``--sites``) holds out whole sites
   (``--cv-group-column site``) for comparison with the subject-wise 'baseline'.

2. Step times with and without the frozen-prefix cache (the TrainConfig.cache_frozen verdict)::

       python benchmarks/training.py step-times [--backbones tiny,biomedclip] [--slices 25] [--reps 3]

3. The table of the finished runs of a bench dir (wall time and memory from each run's bench.json)::

       python benchmarks/training.py table BENCH_DIR

4. What the student's inputs allow, on the same subjects, splits and sessions as a ``cv`` run::

       python benchmarks/training.py probe OUT_DIR --splits BENCH_DIR/baseline/models/splits.json

   Per fold, a logistic regression is fitted on the training + validation subjects and scored on
   the held-out ones, from (a) the FROZEN backbone's CLS features averaged over the input slices
   (no LoRA, no training: the ceiling of a linear read-out of those features) and (b) the
   generator's MRI-visible latents (global atrophy, regional thinning, ventricle size), next to
   (c) the Bayes oracle on those latents. Only for ``bids_amyloid.synth`` cohorts.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

ABLATIONS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "hard": {"negatives": "hard"},
    "no-phase0": {"phase0": False},
    "no-triplet": {"triplet": False},
    "no-feature-kd": {"feature_kd": False},
    "no-logit-kd": {"logit_kd": False},
    "label-only": {"distill": False},
    "leave-site-out": {"cv_group_column": "site"},  # its metrics per site come with it
}
"""TrainConfig overrides of each ablation ('label-only' = student trained without a teacher)."""


# ------------------------------------------------------------------------------ cross-validation

def _source_bids(out_dir: Path) -> Path:
    description = json.loads((out_dir / "dataset_description.json").read_text())
    url = description["SourceDatasets"][0]["URL"]
    if not url.startswith("file://"):
        raise SystemExit(f"cannot find the BIDS input from {url!r}; pass --bids")
    return Path(url[len("file://"):])


def _link_outputs(out_dir: Path, dest: Path) -> None:
    """A fresh output folder whose sub-* folders (slice caches) are links into ``out_dir``."""
    dest.mkdir(parents=True, exist_ok=True)
    for sub in out_dir.glob("sub-*"):
        link = dest / sub.name
        if sub.is_dir() and not link.exists():
            link.symlink_to(sub.resolve(), target_is_directory=True)
    for name in ("dataset_description.json", ".bidsignore"):
        if (out_dir / name).exists() and not (dest / name).exists():
            (dest / name).write_bytes((out_dir / name).read_bytes())


def _run_one(name: str, args: dict[str, Any], queue) -> None:
    """Child process: one ablation through the real group level."""
    import torch

    from bids_amyloid.cli import setup_logging
    from bids_amyloid.config import Config, ModelConfig, TrainConfig
    from bids_amyloid.workflows.group import run_group

    setup_logging(0)
    torch.set_num_threads(args["threads"])
    out = Path(args["bench_dir"]) / name
    _link_outputs(Path(args["out_dir"]), out)
    p0, p1, p2 = args["epochs"]
    train = TrainConfig(folds=args["folds"], phase0_epochs=p0, phase1_epochs=p1, phase2_epochs=p2,
                        bootstrap=args["bootstrap"], lr_scale=args["lr_scale"], monitor=args["monitor"],
                        augment=args["augment"], calibration=args["calibration"], resume=args["resume"],
                        subgroup_columns=tuple(args["subgroups"]), **ABLATIONS[name])
    config = Config(bids_dir=Path(args["bids"]), output_dir=out, analysis_level="group",
                    work_dir=Path(args["bench_dir"]) / f"{name}-work", skip_bids_validation=True,
                    contrasts=[args["contrast"]], device="cpu", seed=args["seed"],
                    model=ModelConfig(backbone=args["backbone"], backbone_weights=args["weights"],
                                      input_slices=args["input_slices"]),
                    train=train)
    start = time.perf_counter()
    run_group(config)
    result = {"ablation": name, "wall_s": round(time.perf_counter() - start, 1),
              "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
    (out / "bench.json").write_text(json.dumps(result) + "\n")  # wall and memory, for the 'table' command
    queue.put({**result, **summarise_run(out, Path(args["bids"]))})


def summarise_run(out: Path, bids: Path) -> dict[str, Any]:
    """Pooled and per-fold AUCs of a finished group run, and the cohort oracle on its sessions."""
    import pandas as pd

    metrics = pd.read_csv(out / "group" / "desc-cv_metrics.tsv", sep="\t", na_values=["n/a"], keep_default_na=False,
                          dtype={"fold": str})
    result: dict[str, Any] = {}
    for row in metrics[metrics.fold == "pooled"].itertuples():
        result[row.model] = {k: getattr(row, k) for k in ("auc", "auc_ci_low", "auc_ci_high", "sensitivity",
                                                          "specificity", "f1", "balanced_accuracy", "n", "ece",
                                                          "ece_ci_low", "ece_ci_high", "auc_calibrated",
                                                          "ece_calibrated", "ece_calibrated_ci_low",
                                                          "ece_calibrated_ci_high", "brier", "brier_calibrated")}
        # Each fold's model has its own probability scale, so the pooled AUC mixes scales; the
        # per-fold AUCs say how well each model ranks its own held-out subjects.
        per_fold = metrics[(metrics.model == row.model) & metrics.fold.str.isdigit()].auc
        result[row.model].update(fold_auc_mean=round(float(per_fold.mean()), 4),
                                 fold_auc_sd=round(float(per_fold.std(ddof=1)), 4))
    zones = pd.read_csv(out / "group" / "desc-zones_metrics.tsv", sep="\t", na_values=["n/a"],
                        keep_default_na=False, dtype={"fold": str})
    for row in zones[zones.fold == "pooled"].itertuples():
        if row.model in result:
            result[row.model].setdefault("zones", {})[row.zone] = {
                k: getattr(row, k) for k in ("n", "fraction", "fraction_ci_low", "fraction_ci_high", "predictive_value",
                                             "predictive_value_ci_low", "predictive_value_ci_high",
                                             "share_of_positives", "share_of_negatives")}
    subgroups = out / "group" / "desc-subgroup_metrics.tsv"
    if subgroups.exists():
        rows = pd.read_csv(subgroups, sep="\t", na_values=["n/a"], keep_default_na=False)
        result["subgroups"] = rows[["model", "subgroup_column", "subgroup", "n", "auc", "auc_ci_low", "auc_ci_high",
                                    "ece_calibrated"]].to_dict(orient="records")
    oof = pd.read_csv(out / "group" / "desc-oof_predictions.tsv", sep="\t", keep_default_na=False)
    result["cohort_oracle"] = _cohort_oracle(bids, oof)
    return result


def table(args: argparse.Namespace) -> dict[str, Any]:
    """The results table of the finished runs in a --bench-dir (e.g. after an interrupted cv)."""
    bench_dir = args.bench_dir.resolve()
    results = []
    for name in [n for n in ABLATIONS if (bench_dir / n / "group" / "desc-cv_metrics.tsv").exists()]:
        run = bench_dir / name
        bids = args.bids or _source_bids(run)
        timing = json.loads((run / "bench.json").read_text()) if (run / "bench.json").exists() else {}
        results.append({"ablation": name, **timing, **summarise_run(run, bids)})
    report = {"bench_dir": str(bench_dir), "oracle": _oracle(bids) if results else {}, "results": results}
    print(_table(report))
    return report


def _cohort_oracle(bids: Path, oof) -> dict[str, Any]:
    """The Bayes-optimal AUCs on exactly the sessions each model was scored on: the MRI oracle
    reads the generator's MRI-visible latents (of the session whose MRI was used), the PET one the
    PET's own Centiloid. A 100-subject cohort can sit well below the population oracle."""
    import numpy as np
    import pandas as pd

    from bids_amyloid.synth.truth import auc, mri_posterior

    if not (bids / "sourcedata" / "synth" / "truth.tsv").exists():
        return {}
    found = {}
    for model in ("student", "teacher"):
        rows = oof[oof.model == model]
        if rows.empty:
            continue
        sessions, latents, effect = _truth_of(bids, list(zip(rows.participant_id, rows.session_id)))
        labels, folds = rows.label.to_numpy(), rows.fold.to_numpy()
        scores = {"mri": mri_posterior(*latents.T, effect)}
        if model == "teacher":
            scores["pet"] = pd.to_numeric(sessions.pet_centiloid).to_numpy()
        found[model] = {"n": len(rows)}
        for name, score in scores.items():
            per_fold = [auc(score[folds == k], labels[folds == k]) for k in sorted(set(folds))]
            found[model][name] = round(auc(score, labels), 4)
            found[model][f"{name}_fold_mean"] = round(float(np.nanmean(per_fold)), 4)
    return found


def _truth_of(bids: Path, keys: list[tuple[str, str]]):
    """The generator's truth rows of (participant_id, session_id) keys, the MRI-visible latents
    (g, y_r, y_v) of the session whose MRI each used, and the cohort's MRI effect size."""
    import pandas as pd

    truth = pd.read_csv(bids / "sourcedata" / "synth" / "truth.tsv", sep="\t", keep_default_na=False)
    truth = truth.set_index(["participant_id", "session_id"])
    sessions = truth.loc[keys]
    mri = truth.loc[list(zip(sessions.index.get_level_values(0), sessions.mri_session))]
    latents = mri[["global_atrophy", "regional_signal", "ventricle_signal"]].to_numpy(float)
    effect = json.loads((bids / "sourcedata" / "synth" / "truth.json").read_text())["parameters"]["effect_mri"]
    return sessions, latents, effect


def _oracle(bids: Path) -> dict[str, Any]:
    truth = bids / "sourcedata" / "synth" / "truth.json"
    if not truth.exists():
        return {}
    data = json.loads(truth.read_text())

    def find(node: Any, path: str = "") -> dict[str, Any]:
        found = {}
        if isinstance(node, dict):
            for k, v in node.items():
                key = f"{path}.{k}" if path else k
                if "auc" in k.lower() and isinstance(v, (int, float, dict)):
                    found[key] = v
                elif isinstance(v, dict):
                    found.update(find(v, key))
        return found

    return find(data)


def cross_validation(args: argparse.Namespace) -> dict[str, Any]:
    out_dir = args.out_dir.resolve()
    bids = (args.bids or _source_bids(out_dir)).resolve()
    bench_dir = (args.bench_dir or out_dir.parent / "bench-training").resolve()
    shared = {"out_dir": str(out_dir), "bids": str(bids), "bench_dir": str(bench_dir), "folds": args.folds,
              "epochs": [int(e) for e in args.epochs.split(",")], "backbone": args.backbone,
              "weights": args.weights, "input_slices": args.input_slices, "contrast": args.contrast,
              "seed": args.seed, "bootstrap": args.bootstrap, "threads": args.threads,
              "lr_scale": args.lr_scale, "monitor": args.monitor, "augment": not args.no_augment,
              "calibration": args.calibration, "subgroups": args.subgroup_column, "resume": args.resume}
    context = multiprocessing.get_context("spawn")
    results = []
    for name in args.ablations.split(","):
        if name not in ABLATIONS:
            raise SystemExit(f"unknown ablation {name!r}; choose from {list(ABLATIONS)}")
        queue = context.Queue()
        child = context.Process(target=_run_one, args=(name, shared, queue))
        child.start()
        child.join()
        if child.exitcode != 0:
            results.append({"ablation": name, "error": f"exit code {child.exitcode}"})
            continue
        results.append(queue.get())
        print(json.dumps(results[-1]), flush=True)
    report = {"settings": shared, "oracle": _oracle(bids), "results": results}
    print(_table(report))
    return report


def _fmt(m: dict[str, Any] | None) -> str:
    if not m:
        return "-"
    pooled = f"{m['auc']:.3f} [{m['auc_ci_low']:.3f}, {m['auc_ci_high']:.3f}]"
    return f"{pooled}; folds {m['fold_auc_mean']:.3f} ± {m['fold_auc_sd']:.3f}" if "fold_auc_mean" in m else pooled


def _ci(m: dict[str, Any], key: str) -> str:
    return f"{m[key]:.3f} [{m[key + '_ci_low']:.3f}, {m[key + '_ci_high']:.3f}]"


def _calibration_table(report: dict[str, Any]) -> str:
    """ECE before / after calibration and the zones, out of fold, per run and model."""
    lines = ["| run | model | ECE [95% CI] | ECE calibrated [95% CI] | Brier -> calibrated | rule-out: share "
             "[CI]; NPV [CI]; positives missed | rule-in: share [CI]; PPV [CI] | intermediate share |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        for model in ("student", "teacher"):
            m = r.get(model)
            if not m or "ece_calibrated" not in m:
                continue
            z = m.get("zones", {})
            out, inside, mid = z.get("rule-out"), z.get("rule-in"), z.get("intermediate")
            zone_out = (f"{_ci(out, 'fraction')}; {_ci(out, 'predictive_value')}; {out['share_of_positives']:.3f}"
                        if out else "-")
            zone_in = f"{_ci(inside, 'fraction')}; {_ci(inside, 'predictive_value')}" if inside else "-"
            zone_mid = f"{mid['fraction']:.3f}" if mid else "-"
            lines.append(f"| {r['ablation']} | {model} | {_ci(m, 'ece')} | {_ci(m, 'ece_calibrated')} | "
                         f"{m['brier']:.3f} -> {m['brier_calibrated']:.3f} | {zone_out} | {zone_in} | {zone_mid} |")
    return "\n".join(lines)


def _table(report: dict[str, Any]) -> str:
    lines = ["| ablation | teacher AUC: pooled [95% CI]; per fold mean ± SD | student AUC: same | "
             "MRI oracle on the student's sessions: pooled; per fold mean | wall (s) "
             "| peak RSS (GiB) |", "|---|---|---|---|---|---|"]
    for r in report["results"]:
        same = r.get("cohort_oracle", {}).get("student", {})
        oracle = f"{same['mri']:.3f}; folds {same['mri_fold_mean']:.3f}" if same else "-"
        lines.append(f"| {r['ablation']} | {_fmt(r.get('teacher'))} | {_fmt(r.get('student'))} | {oracle} | "
                     f"{r.get('wall_s', '-')} | {r.get('peak_rss_gib', '-')} |")
    if report["oracle"]:
        lines.append("")
        lines.append("population oracle AUCs (truth.json): " + json.dumps(report["oracle"]))
    lines += ["", _calibration_table(report)]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ step times

def _best_time(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _timings(net, mri, pet, reps: int) -> dict[str, float]:
    import torch

    def train_step(m, p):
        net.train()
        net.teacher(m, p).logit.sum().backward()

    def eval_pass(m, p):
        net.eval()
        with torch.no_grad():
            net.teacher(m, p)

    start = time.perf_counter()
    tok_m, tok_p = net.frozen_prefix(mri), net.frozen_prefix(pet)
    prefix = time.perf_counter() - start
    return {"train_step_images_s": _best_time(lambda: train_step(mri, pet), reps),
            "train_step_cached_s": _best_time(lambda: train_step(tok_m, tok_p), reps),
            "eval_images_s": _best_time(lambda: eval_pass(mri, pet), reps),
            "eval_cached_s": _best_time(lambda: eval_pass(tok_m, tok_p), reps),
            "prefix_s": prefix, "cache_mib_per_session_fp32": round(2 * tok_m.numel() * 4 / 2**20, 1)}


def step_times(args: argparse.Namespace) -> dict[str, Any]:
    """Teacher train step and validation pass (one session), images vs cached frozen-prefix tokens."""
    import torch

    from bids_amyloid.config import ModelConfig
    from bids_amyloid.models.backbone import SliceEncoder
    from bids_amyloid.models.networks import build_network

    torch.set_num_threads(args.threads)
    report = {}
    for kind in args.backbones.split(","):
        torch.manual_seed(0)
        net = build_network(ModelConfig(backbone=kind), encoder_state=SliceEncoder(kind).state_dict())
        mri, pet = torch.randn(1, args.slices, 3, 224, 224), torch.randn(1, args.slices, 3, 224, 224)
        row = {"slices": args.slices, "frozen_blocks": net.encoder.frozen_blocks, "blocks": net.encoder.n_blocks,
               **_timings(net, mri, pet, args.reps)}
        report[kind] = row
        print(json.dumps({kind: row}), flush=True)
    return report


# ------------------------------------------------------------------------------ linear probes

def _probe_aucs(features, labels, folds, fold_of_subject, subjects) -> dict[str, float]:
    """Per-fold logistic regression (C chosen by inner CV on the training part): pooled and mean AUC."""
    import warnings

    import numpy as np
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bids_amyloid.synth.truth import auc

    prob, per_fold = np.full(len(labels), np.nan), []
    for fold in folds:
        part = np.array([fold_of_subject[fold.index].get(s) for s in subjects])
        fit, test = np.isin(part, ["train", "val"]), part == "test"
        model = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=[0.01, 0.1, 1.0], cv=3, max_iter=5000))
        with warnings.catch_warnings():  # sklearn's notices of future defaults, not about this fit
            warnings.simplefilter("ignore", FutureWarning)
            model.fit(features[fit], labels[fit])
        prob[test] = model.predict_proba(features[test])[:, 1]
        per_fold.append(auc(prob[test], labels[test]))
    return {"pooled": round(auc(prob, labels), 4), "fold_mean": round(float(np.nanmean(per_fold)), 4)}


def probe(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    from bids_amyloid.bids.derivatives import Derivatives
    from bids_amyloid.bids.layout import discover_sessions, require_labels
    from bids_amyloid.config import Config, ModelConfig
    from bids_amyloid.models.inputs import select_slices, to_model_input
    from bids_amyloid.models.weights import load_slice_encoder
    from bids_amyloid.synth.truth import auc, mri_posterior
    from bids_amyloid.train.cv import Splits
    from bids_amyloid.train.data import build_samples, read_slice_means, student_samples

    torch.set_num_threads(args.threads)
    out_dir = args.out_dir.resolve()
    bids = (args.bids or _source_bids(out_dir)).resolve()
    config = Config(bids_dir=bids, output_dir=out_dir, analysis_level="group", skip_bids_validation=True,
                    work_dir=Path("/tmp") / "bids_amyloid-probe-work", contrasts=[args.contrast],
                    model=ModelConfig(backbone=args.backbone, backbone_weights=args.weights))
    samples = student_samples(build_samples(require_labels(discover_sessions(config), config),
                                            Derivatives(out_dir), args.contrast)[0])
    splits = Splits.from_json(json.loads(args.splits.read_text()), args.splits)
    fold_of_subject = {f.index: {s: p for p in ("train", "val", "test") for s in getattr(f, p)} for f in splits.folds}
    encoder = load_slice_encoder(args.backbone, args.weights).eval()
    start, features = time.perf_counter(), []
    with torch.inference_mode():
        for s in samples:
            index = select_slices(read_slice_means(s.mri), args.input_slices, config.preprocess.min_slice_mean)
            x = to_model_input(torch.from_numpy(np.load(s.mri, mmap_mode="r")[index].astype(np.float32)), "mri")
            features.append(encoder(x).float().mean(0).numpy())
    encode_s = time.perf_counter() - start
    labels, subjects = np.array([s.label for s in samples]), [s.subject for s in samples]
    _, latents, effect = _truth_of(bids, [(f"sub-{s.subject}", f"ses-{s.session}") for s in samples])
    oracle = mri_posterior(*latents.T, effect)
    part = {f.index: np.array([fold_of_subject[f.index].get(s) == "test" for s in subjects]) for f in splits.folds}
    report = {"sessions": len(samples), "encode_s": round(encode_s, 1), "input_slices": args.input_slices,
              f"frozen_{args.backbone}_cls_probe": _probe_aucs(np.stack(features), labels, splits.folds,
                                                               fold_of_subject, subjects),
              "latent_probe": _probe_aucs(latents, labels, splits.folds, fold_of_subject, subjects),
              "bayes_oracle": {"pooled": round(auc(oracle, labels), 4), "fold_mean": round(float(np.nanmean(
                  [auc(oracle[m], labels[m]) for m in part.values()])), 4)}}
    print(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    cv = sub.add_parser("cv", help="cross-validated AUCs and ablations on a preprocessed cohort")
    cv.add_argument("out_dir", type=Path, help="participant-level output folder (slice caches)")
    cv.add_argument("--bids", type=Path, help="the cohort's BIDS folder (default: from dataset_description.json)")
    cv.add_argument("--bench-dir", type=Path, help="where each ablation writes (default OUT_DIR/../bench-training)")
    cv.add_argument("--ablations", default="baseline,hard,no-triplet,no-feature-kd,no-logit-kd,label-only")
    cv.add_argument("--epochs", default="3,2,6", help="maximum epochs of phases 0,1,2 (the method: 30,15,100)")
    cv.add_argument("--folds", type=int, default=5)
    cv.add_argument("--input-slices", type=int, default=25)
    cv.add_argument("--contrast", default="T1w")
    cv.add_argument("--backbone", default="tiny", choices=("tiny", "biomedclip"))
    cv.add_argument("--weights", type=Path, help="backbone weights folder (tiny: random if absent)")
    cv.add_argument("--lr-scale", type=float, default=1.0, help="TrainConfig.lr_scale (random tiny backbone: 10)")
    cv.add_argument("--monitor", choices=("f1", "auc"), default="f1", help="TrainConfig.monitor")
    cv.add_argument("--no-augment", action="store_true", help="TrainConfig.augment = False")
    cv.add_argument("--calibration", default="auto", help="TrainConfig.calibration")
    cv.add_argument("--subgroup-column", nargs="*", default=[], help="TrainConfig.subgroup_columns (e.g. site)")
    cv.add_argument("--resume", action="store_true", help="reuse the finished folds of an earlier run")
    cv.add_argument("--seed", type=int, default=1234)
    cv.add_argument("--bootstrap", type=int, default=1000)
    cv.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    cv.add_argument("--report", type=Path, help="write the results as JSON here")
    st = sub.add_parser("step-times", help="CPU step times with/without the frozen-prefix cache")
    st.add_argument("--backbones", default="tiny,biomedclip")
    st.add_argument("--slices", type=int, default=25)
    st.add_argument("--reps", type=int, default=3)
    st.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    st.add_argument("--report", type=Path)
    tb = sub.add_parser("table", help="the results table of the finished cv runs in a bench dir")
    tb.add_argument("bench_dir", type=Path)
    tb.add_argument("--bids", type=Path, help="the cohort's BIDS folder (default: from dataset_description.json)")
    tb.add_argument("--report", type=Path)
    pr = sub.add_parser("probe", help="linear probes: frozen backbone features and generator latents")
    pr.add_argument("out_dir", type=Path, help="participant-level output folder (slice caches)")
    pr.add_argument("--splits", type=Path, required=True, help="models/splits.json of a cv run")
    pr.add_argument("--bids", type=Path)
    pr.add_argument("--input-slices", type=int, default=25)
    pr.add_argument("--contrast", default="T1w")
    pr.add_argument("--backbone", default="tiny", choices=("tiny", "biomedclip"))
    pr.add_argument("--weights", type=Path)
    pr.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    pr.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    report = {"cv": cross_validation, "step-times": step_times, "probe": probe, "table": table}[args.command](args)
    if args.report:
        args.report.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
