"""Realistic synthetic BIDS cohorts (MRI + amyloid PET) with known ground truth.

Used by tests, benchmarks and the README example; the pipeline itself never imports it.
``generate_cohort(out_dir, n_subjects=6, seed=0, resolution=1.0, ...)`` writes the dataset and
returns a :class:`CohortTruth`; ``bids_amyloid-synth OUT_DIR`` is the console equivalent.
"""
from bids_amyloid.synth.cohort import CohortTruth, generate_cohort, load_truth

__all__ = ["CohortTruth", "generate_cohort", "load_truth"]
