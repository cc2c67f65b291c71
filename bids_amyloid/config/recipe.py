"""The training recipe of the method (method.md 4): optimiser settings and loss schedules per phase.

These are the published numbers. They are settings like any other (saved with every run and in
every model bundle) but not command-line options: change them in a ``--config`` file; the
command line scales every rate with ``--lr-scale``. Epochs count from 0 within their phase.
"""
from __future__ import annotations

from dataclasses import dataclass, field

HIDDEN = "the method's recipe: change it in a --config file"


@dataclass
class Phase0Recipe:
    CLI_HIDDEN = HIDDEN

    lr: float = 2e-5
    """AdamW learning rate of the teacher's classification pre-training."""
    weight_decay: float = 1e-3
    """AdamW weight decay."""
    clip_epochs: tuple[int, ...] = (2, 5)
    """Epochs at which the gradient-norm clip steps up (to the next value of clip_values)."""
    clip_values: tuple[float, ...] = (1.0, 2.0, 5.0)
    """Gradient-norm clip before, between and after clip_epochs."""


@dataclass
class Phase1Recipe:
    CLI_HIDDEN = HIDDEN

    encoder_lr: float = 5e-6
    """AdamW learning rate of LoRA, projection and attention."""
    encoder_wd: float = 1e-2
    """Their weight decay."""
    classifier_lr: float = 2e-5
    """Learning rate of the classifier."""
    classifier_wd: float = 5e-3
    """Its weight decay."""
    clip: float = 1.0
    """Gradient-norm clip."""
    t0: int = 5
    """Cosine warm restarts: epochs of the first cycle."""
    t_mult: int = 2
    """Cosine warm restarts: cycle length multiplier."""
    eta_min: float = 1e-7
    """Cosine warm restarts: lowest learning rate."""
    triplet_margin: float = 1.0
    """Margin of the triplet loss (L2 distances)."""
    norm_weight: float = 0.01
    """Weight of the mean L2 norm of the anchor, positive and negative embeddings."""
    cos_offset: float = 0.1
    """Cosine penalty: relu(mean cos(a, n) + offset) * factor * scale."""
    cos_factor: float = 0.5
    """Cosine penalty factor."""
    cos_scale: tuple[float, float, int] = (0.1, 0.1, 3)
    """Cosine penalty scale: start value, increase per epoch after the given epoch (capped at 1)."""


@dataclass
class Phase2Recipe:
    CLI_HIDDEN = HIDDEN

    lora_lr: float = 2e-4
    """AdamW learning rate of the student's LoRA."""
    lora_wd: float = 0.0
    """Its weight decay."""
    heads_lr: float = 1e-4
    """Learning rate of projection and attention."""
    heads_wd: float = 1e-4
    """Their weight decay."""
    classifier_lr: float = 1e-4
    """Learning rate of the classifier."""
    classifier_wd: float = 1e-3
    """Its weight decay."""
    clip: float = 5.0
    """Gradient-norm clip."""
    plateau_factor: float = 0.7
    """ReduceLROnPlateau factor on the validation score."""
    plateau_patience: int = 15
    """ReduceLROnPlateau patience (epochs)."""
    weights_start: tuple[float, float, float] = (0.3, 0.5, 0.2)
    """(w_clf, w_feat, w_logit) at epoch 0."""
    weights_change: tuple[float, float, float] = (0.1, -0.1, 0.0)
    """Change of each weight over the ramp (0.4/0.4/0.2 from weights_ramp_epochs on, linear between)."""
    weights_ramp_epochs: int = 10
    """Epochs over which the loss weights ramp."""
    temperature: tuple[float, float, int, float] = (2.5, 1.0, 5, 0.1)
    """Logit KD temperature: start, floor, first epoch of the decrease, decrease per epoch."""
    margin: tuple[float, float, int, int] = (0.3, 0.9, 5, 20)
    """Focal-margin BCE margin: start, rise, and the epochs between which it rises linearly (0.3 -> 1.2)."""
    focal_gamma: float = 2.0
    """Focal factor exponent (1 - p_t)^gamma."""
    projection_dropout: tuple[float, float] = (0.3, 0.2)
    """The student's lowered dropouts of the projection head."""
    classifier_dropout: float = 0.4
    """The student's lowered classifier dropout."""


@dataclass
class Recipe:
    phase0: Phase0Recipe = field(default_factory=Phase0Recipe)
    phase1: Phase1Recipe = field(default_factory=Phase1Recipe)
    phase2: Phase2Recipe = field(default_factory=Phase2Recipe)
