"""Networks of the method: BiomedCLIP vision tower + LoRA, projection head, attention pooling,
classifier (``networks``); model input conversion (``inputs``); model bundles (``bundle``).

Modules: ``backbone`` (SliceEncoder), ``weights`` (weights folders: fetch/convert, resolve,
load_slice_encoder), ``lora``, ``pooling``, ``networks`` (AmyloidNet, build_network), ``inputs``
(select_slices, to_model_input), ``bundle`` (load_bundle, load_students), ``bundle_write``
(save_bundle, model card).
"""
