"""Group-level training: data from the slice cache (``data``), augmentation (``augment``),
Centiloid-aware negatives (``negatives``), losses and schedules (``losses``), the three phases
(``phases`` on top of ``loop``), subject-level cross-validation (``cv``, ``runner``), metrics
(``metrics``), torchrun data parallelism (``distributed``), checkpoints (``checkpoint``), the
frozen-prefix cache (``prefix``) and device/seed handling (``runtime``).

The group workflow (``bids_amyloid.workflows.group``) is the entry point.
"""
