"""Participant-level preprocessing: load + check + reorient -> N4 -> skull strip + registration to
MNI152NLin2009aSym -> PET SUVR -> slice tensors -> QC figures. Entry point:
:func:`preprocess_session` (see :mod:`bids_amyloid.preprocess.session`)."""
from bids_amyloid.preprocess.session import preprocess_session

__all__ = ["preprocess_session"]
