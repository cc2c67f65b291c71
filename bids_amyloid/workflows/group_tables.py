"""The data dictionaries of the group-level tables (``workflows.group`` writes them; their names:
``bids.derivatives``)."""
from __future__ import annotations

from bids_amyloid.bids.tables import Column

PREDICTION_COLUMNS: dict[str, Column] = {
    "participant_id": Column("BIDS subject label with 'sub-'", long_name='Participant'),
    "session_id": Column("BIDS session label with 'ses-' (n/a: no sessions)", long_name='Session'),
    "contrast": Column('MRI contrast the model reads', long_name='MRI contrast'),
    "tracer": Column("Tracer family of the PET the teacher read (PiB, florbetapir, ...); for the student the tracer(s) of the session's PET, joined by '+' (n/a: no PET)", long_name='PET tracer'),
    "model": Column('Which network predicted', long_name='Model', levels={'teacher': 'PET + MRI teacher', 'student': 'MRI-only student'}),
    "fold": Column('Cross-validation fold whose held-out (or validation) part holds this session', long_name='Fold'),
    "part": Column('Part of the fold', long_name='Part', levels={'test': 'held-out fold', 'val': 'validation part of the training folds'}),
    "label": Column('Reference label', long_name='Amyloid status', levels={'0': 'negative', '1': 'positive'}),
    "centiloid": Column('Reference Centiloid value (n/a: a ready status column was used)', long_name='Centiloid'),
    "probability": Column('Predicted probability of amyloid positivity', long_name='Probability'),
    "threshold": Column("Decision threshold chosen on the fold's VALIDATION data", long_name='Threshold'),
    "prediction": Column('1 when probability >= threshold', long_name='Prediction', levels={'0': 'negative', '1': 'positive'}),
    "calibrated_probability": Column("Probability mapped by the fold's calibrator, fitted on the fold's VALIDATION part (= probability with --calibration none)", long_name='Calibrated probability'),
    "rule_out_threshold": Column("Below this calibrated probability the session is ruled out; chosen on the fold's validation part for --rule-out-sensitivity (n/a: no positives there)", long_name='Rule-out threshold'),
    "rule_in_threshold": Column("From this calibrated probability on the session is ruled in; chosen on the fold's validation part for --rule-in-specificity (n/a: no negatives there)", long_name='Rule-in threshold'),
    "zone": Column('Operating zone of the calibrated probability', long_name='Zone', levels={'rule-out': 'below the rule-out threshold: amyloid PET could be spared', 'intermediate': 'between the thresholds: refer for PET (or a blood test)', 'rule-in': 'from the rule-in threshold on: likely amyloid positive', 'n/a': 'no operating points in this fold'}),
}

METRIC_COLUMNS: dict[str, Column] = {
    "contrast": Column('MRI contrast'),
    "model": Column('teacher (PET + MRI) or student (MRI only)'),
    "fold": Column("fold index; 'pooled' (all out-of-fold predictions, each with its own fold's threshold); 'mean' (the fold rows averaged: each fold's model ranks its own held-out subjects)"),
    "n": Column('sessions'),
    "n_positive": Column('amyloid-positive sessions'),
    "auc": Column('ROC AUC'),
    "auc_ci_low": Column('bootstrap 95% CI of the AUC (subjects resampled, each with all its sessions), lower bound'),
    "auc_ci_high": Column('bootstrap 95% CI, upper bound'),
    "threshold": Column('validation threshold (n/a when pooled over folds)'),
    "sensitivity": Column('TP / (TP + FN)'),
    "specificity": Column('TN / (TN + FP)'),
    "ppv": Column('TP / (TP + FP)'),
    "npv": Column('TN / (TN + FN)'),
    "f1": Column('F1 score'),
    "balanced_accuracy": Column('(sensitivity + specificity) / 2'),
    "accuracy": Column('(TP + TN) / n'),
    "ece": Column('expected calibration error of the probabilities, 10 equal-width bins'),
    "ece_ci_low": Column('bootstrap 95% CI of the ECE, lower bound'),
    "ece_ci_high": Column('bootstrap 95% CI of the ECE, upper bound'),
    "brier": Column('Brier score of the probabilities'),
    "auc_calibrated": Column('ROC AUC of the calibrated probabilities (differs from auc only when pooling folds)'),
    "ece_calibrated": Column("ECE of the calibrated probabilities (each fold's calibrator fitted on its validation part)"),
    "ece_calibrated_ci_low": Column('bootstrap 95% CI of the calibrated ECE (same resamples), lower bound'),
    "ece_calibrated_ci_high": Column('bootstrap 95% CI of the calibrated ECE, upper bound'),
    "brier_calibrated": Column('Brier score of the calibrated probabilities'),
    "auc_fold_sd": Column("standard deviation of the fold AUCs (row 'mean' only)"),
}

_ZONE_KEYS: dict[str, Column] = {
    "contrast": Column('MRI contrast'),
    "model": Column('teacher (PET + MRI) or student (MRI only)'),
    "fold": Column("fold index, or 'pooled' (all out-of-fold predictions, each with its own fold's operating points)"),
}

ZONE_COLUMNS: dict[str, Column] = {
    **_ZONE_KEYS,
    "zone": Column('operating zone of the calibrated probability', levels={'rule-out': 'below the rule-out threshold', 'intermediate': 'between the thresholds', 'rule-in': 'from the rule-in threshold on', 'n/a': 'fold without operating points'}),
    "n": Column('sessions in the zone'),
    "fraction": Column('share of all sessions in the zone (rule-out + rule-in: PET scans the model would save)'),
    "fraction_ci_low": Column('bootstrap 95% CI of the fraction (subjects resampled), lower bound'),
    "fraction_ci_high": Column('bootstrap 95% CI of the fraction, upper bound'),
    "n_positive": Column('amyloid-positive sessions in the zone'),
    "positive_fraction": Column('n_positive / n'),
    "predictive_value": Column('rule-out: NPV (share of its sessions that are negative); rule-in: PPV (share positive); n/a otherwise'),
    "predictive_value_ci_low": Column('bootstrap 95% CI of the predictive value, lower bound'),
    "predictive_value_ci_high": Column('bootstrap 95% CI of the predictive value, upper bound'),
    "share_of_positives": Column('share of all positive sessions in the zone (rule-out: the positives the model would miss)'),
    "share_of_negatives": Column('share of all negative sessions in the zone (rule-in: the negatives it would call positive)'),
}

SUBGROUP_COLUMNS: dict[str, Column] = {
    "contrast": Column('MRI contrast'),
    "model": Column('teacher (PET + MRI) or student (MRI only)'),
    "subgroup_column": Column("'tracer' (the PET tracer family), or a --subgroup-column of participants.tsv, sessions.tsv, phenotype/ or --labels-file"),
    "subgroup": Column("the column's value ('n/a': missing)"),
    **{k: v for k, v in METRIC_COLUMNS.items() if k not in ("contrast", "model", "fold", "auc_fold_sd")},
}
