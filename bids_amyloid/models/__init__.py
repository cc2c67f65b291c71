"""Networks of the method: BiomedCLIP vision tower + LoRA, projection head, attention pooling,
classifier (``networks``); model input conversion (``inputs``); model bundles (``bundle``).

Modules: ``backbone`` (SliceEncoder, weights folders, fetch/convert), ``lora``, ``pooling``,
``networks`` (AmyloidNet, build_network), ``inputs`` (select_slices, to_model_input), ``bundle``
(save_bundle, load_bundle, load_students).
"""
