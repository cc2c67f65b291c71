"""Backbone weights folders: convert, fetch, find, verify and load the vision tower's tensors.

Weights folder (written by :func:`convert_checkpoint`, read by :func:`load_slice_encoder`)::

    vision.safetensors   visual.* tensors only, float32, keys as in the open_clip checkpoint
    config.json          kind, open_clip vision config, source file + sha256, tensor digest
    manifest.json        sha256 of the two files above (written last: no manifest = incomplete)

Checkpoints are read only through safetensors or ``torch.load(weights_only=True)``; every file
is checked against the manifest before it is parsed. The architecture itself is in
:mod:`bids_amyloid.models.backbone`.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bids_amyloid.bids.io import atomic_path, atomic_write_json, sha256_file
from bids_amyloid.errors import DataError, MissingInputError
from bids_amyloid.models.backbone import BACKBONES, SliceEncoder, build_visual, check_kind, seeded
from bids_amyloid.models.tensorfiles import load_safetensors, save_safetensors, tensor_digest, verify_manifest

log = logging.getLogger(__name__)

HF_REPO = "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
"""Hub repository of BiomedCLIP (open_clip format); used only by :func:`fetch_weights`."""
HF_CHECKPOINT = "open_clip_pytorch_model.bin"
HF_CONFIG = "open_clip_config.json"
HF_CHECKPOINT_SHA256 = "52cc993c5c5ff962bd0c60931874bc001e7e9b41666a385530f4a036294576be"
"""sha256 of the published ``open_clip_pytorch_model.bin``: any other file is refused unless the
user names its hash (``fetch-weights --checkpoint-sha256``)."""

WEIGHTS_ENV = "BIDS_AMYLOID_WEIGHTS"
"""Environment variable naming a weights folder (or a folder holding ``<kind>/`` folders)."""
DEFAULT_WEIGHTS_ROOT = Path("/opt/bids_amyloid/weights")
"""Where the container image keeps its copy: ``/opt/bids_amyloid/weights/<kind>``."""

WEIGHTS_FILE = "vision.safetensors"
WEIGHTS_CONFIG = "config.json"
WEIGHTS_MANIFEST = "manifest.json"
WEIGHTS_FORMAT = "bids_amyloid-vision-weights"
WEIGHTS_FORMAT_VERSION = 1


def _read_checkpoint(src: Path) -> dict[str, Tensor]:
    """A state dict from an open_clip checkpoint (.bin/.pt via weights_only, or .safetensors)."""
    src = Path(src)
    if not src.is_file():
        raise MissingInputError(f"{src}: checkpoint not found")
    if src.suffix == ".safetensors":
        state: Any = load_safetensors(src)
    else:
        try:
            state = torch.load(src, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise DataError(f"{src}: cannot read checkpoint safely (torch.load weights_only): {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise DataError(f"{src}: not a state dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


# --------------------------------------------------------------------------------------------
# weights folders


def write_random_checkpoint(path: Path, kind: str, seed: int = 0) -> Path:
    """An open_clip-FORMAT checkpoint with random weights (for tests): ``visual.*`` of ``kind``
    plus a fake ``text.*`` part and ``logit_scale``, as the real file has. ``.safetensors``
    suffix -> safetensors, else ``torch.save`` (like ``open_clip_pytorch_model.bin``)."""
    with seeded(seed):
        visual = build_visual(kind)
        state = {f"visual.{k}": v for k, v in visual.state_dict().items()}
        state["text.transformer.embeddings.word_embeddings.weight"] = torch.randn(64, 16)
        state["text.proj.0.weight"] = torch.randn(32, 16)
        state["logit_scale"] = torch.tensor(4.6052)
    path = Path(path)
    if path.suffix == ".safetensors":
        return save_safetensors(state, path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def convert_checkpoint(src: Path, dest_dir: Path, kind: str, *, source: dict[str, Any] | None = None) -> Path:
    """Keep ``visual.*`` of an open_clip checkpoint -> ``dest_dir/{vision.safetensors,
    config.json, manifest.json}``; return ``dest_dir``. The tensors must load strictly into
    the ``kind`` vision tower (else DataError). Floats are stored as float32."""
    check_kind(kind)
    src, dest_dir = Path(src), Path(dest_dir)
    state = _read_checkpoint(src)
    visual = {k: v for k, v in state.items() if k.startswith("visual.")}
    if not visual:
        raise DataError(f"{src}: no visual.* tensors (not an open_clip checkpoint?)")
    visual = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in visual.items()}
    with torch.device("meta"):  # names and shapes only: no weights allocated
        encoder = SliceEncoder(kind)
    try:
        encoder.load_state_dict(visual, strict=True, assign=True)
    except RuntimeError as exc:
        raise DataError(f"{src}: visual tensors do not match the {kind!r} vision tower: {exc}") from exc
    del encoder
    dest_dir.mkdir(parents=True, exist_ok=True)
    (dest_dir / WEIGHTS_MANIFEST).unlink(missing_ok=True)  # folder incomplete until the end
    save_safetensors(visual, dest_dir / WEIGHTS_FILE, metadata={"format": "pt", "kind": kind})
    config = {
        "format": WEIGHTS_FORMAT,
        "format_version": WEIGHTS_FORMAT_VERSION,
        "kind": kind,
        "testing_only": BACKBONES[kind]["testing_only"],
        "open_clip_model_cfg": {k: v for k, v in BACKBONES[kind].items() if k in ("embed_dim", "vision_cfg")},
        "embedding": "CLS token of trunk.forward_features (visual.head.proj unused)",
        "source": {"file": src.name, "sha256": sha256_file(src), **(source or {})},
        "tensor_digest": tensor_digest(visual),
        "n_tensors": len(visual),
        "n_parameters": int(sum(v.numel() for v in visual.values())),
        "dropped_keys": len(state) - len(visual),
    }
    atomic_write_json(dest_dir / WEIGHTS_CONFIG, config)
    manifest = {"files": {name: sha256_file(dest_dir / name) for name in (WEIGHTS_FILE, WEIGHTS_CONFIG)}}
    atomic_write_json(dest_dir / WEIGHTS_MANIFEST, manifest)
    log.info("wrote %s vision weights (%d tensors, %d dropped) to %s", kind, len(visual),
             config["dropped_keys"], dest_dir)
    return dest_dir


def fetch_weights(dest_dir: Path, *, revision: str | None = None,
                  checkpoint_sha256: str = HF_CHECKPOINT_SHA256) -> Path:
    """Download BiomedCLIP once and convert it (the ONLY network use of the app).

    The checkpoint must have the sha256 ``checkpoint_sha256`` (the pinned one by default); the
    config is read from the same hub commit, and the weights folder records repo, commit and hash.
    """
    from huggingface_hub import hf_hub_download

    dest_dir = Path(dest_dir)
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    download = Path(tempfile.mkdtemp(prefix=".tmp-download-", dir=dest_dir.parent))
    try:
        ckpt = Path(hf_hub_download(HF_REPO, HF_CHECKPOINT, cache_dir=download, revision=revision))
        actual = sha256_file(ckpt)
        if actual != checkpoint_sha256.lower():
            raise DataError(f"{HF_REPO}/{HF_CHECKPOINT}: sha256 {actual}, expected {checkpoint_sha256}; not the "
                            "checkpoint bids_amyloid was built for. If you trust it, pass --checkpoint-sha256 "
                            f"{actual}")
        commit = _hub_commit(ckpt) or revision
        cfg_path = Path(hf_hub_download(HF_REPO, HF_CONFIG, cache_dir=download, revision=commit))
        vision_cfg = json.loads(cfg_path.read_text()).get("model_cfg", {}).get("vision_cfg", {})
        want = BACKBONES["biomedclip"]["vision_cfg"]
        for key in ("timm_model_name", "timm_pool", "timm_proj", "image_size"):
            if key in vision_cfg and vision_cfg[key] != want[key]:
                raise DataError(f"{HF_REPO}/{HF_CONFIG}: vision {key} is {vision_cfg[key]!r}, expected {want[key]!r}")
        log.info("%s at commit %s, %s sha256 %s", HF_REPO, commit or "unknown", HF_CHECKPOINT, actual)
        return convert_checkpoint(ckpt, dest_dir, "biomedclip", source={"repo": HF_REPO, "revision": commit})
    finally:
        shutil.rmtree(download, ignore_errors=True)


def _hub_commit(path: Path) -> str | None:
    """The commit a hub download came from: its cache path is ``.../snapshots/<commit>/<file>``."""
    parts = Path(path).parts
    return parts[-2] if len(parts) >= 3 and parts[-3] == "snapshots" else None


def _is_weights_dir(path: Path) -> bool:
    return (path / WEIGHTS_MANIFEST).is_file() and (path / WEIGHTS_FILE).is_file()


def fetch_hint(kind: str) -> str:
    if kind == "tiny":
        return ("the 'tiny' backbone is random and TESTING ONLY; write one with "
                "bids_amyloid.models.weights.write_random_checkpoint + convert_checkpoint")
    return (f"download them once on a machine with internet access: `bids_amyloid fetch-weights DIR` "
            f"(DIR e.g. {DEFAULT_WEIGHTS_ROOT / kind}), then pass `--backbone-weights DIR` or set "
            f"{WEIGHTS_ENV}=DIR")


def resolve_weights_dir(kind: str, cli_value: Path | None) -> Path:
    """The weights folder: the CLI value, else ``$BIDS_AMYLOID_WEIGHTS`` (the folder itself or
    its ``<kind>/``), else ``/opt/bids_amyloid/weights/<kind>``. MissingInputError otherwise."""
    check_kind(kind)
    if cli_value is not None:
        path = Path(cli_value)
        for cand in (path, path / kind):
            if _is_weights_dir(cand):
                return cand
        raise MissingInputError(f"--backbone-weights {path}: no {WEIGHTS_FILE} + {WEIGHTS_MANIFEST} there "
                                f"for the {kind!r} backbone; {fetch_hint(kind)}")
    tried = []
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        tried += [Path(env), Path(env) / kind]
    tried.append(DEFAULT_WEIGHTS_ROOT / kind)
    for cand in tried:
        if _is_weights_dir(cand):
            return cand
    raise MissingInputError(f"{kind} vision weights not found (looked in: {', '.join(map(str, tried))}); "
                            f"{fetch_hint(kind)}")


def read_weights_config(weights_dir: Path) -> dict[str, Any]:
    """Verify the manifest of a weights folder and return its config.json."""
    verify_manifest(weights_dir)
    path = Path(weights_dir) / WEIGHTS_CONFIG
    try:
        config = json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{path}: unreadable ({exc})") from exc
    if config.get("format") != WEIGHTS_FORMAT or config.get("format_version") != WEIGHTS_FORMAT_VERSION:
        raise DataError(f"{path}: not a {WEIGHTS_FORMAT} v{WEIGHTS_FORMAT_VERSION} folder")
    return config


_WARNED_TINY = False


def load_slice_encoder(kind: str, weights_dir: Path | None) -> SliceEncoder:
    """Build the ``kind`` encoder and load its weights (checksums verified first).

    ``weights_dir`` None -> :func:`resolve_weights_dir`; for 'tiny' only, a missing folder falls
    back to a deterministic random initialisation (seed 0) -- it is TESTING ONLY anyway.
    The encoder is returned in eval mode with all parameters trainable (LoRA freezes them).
    """
    check_kind(kind)
    try:
        folder = resolve_weights_dir(kind, weights_dir)
    except MissingInputError:
        if kind != "tiny" or weights_dir is not None:
            raise
        with seeded(0):
            encoder = SliceEncoder(kind)
        global _WARNED_TINY
        if not _WARNED_TINY:
            log.warning("backbone 'tiny': random weights (seed 0), TESTING ONLY")
            _WARNED_TINY = True
        return encoder.eval()
    config = read_weights_config(folder)
    if config.get("kind") != kind:
        raise DataError(f"{folder / WEIGHTS_CONFIG}: weights are for backbone {config.get('kind')!r}, "
                        f"not {kind!r}")
    state = load_safetensors(folder / WEIGHTS_FILE)
    with torch.device("meta"):  # no random init of weights replaced at once (2.5 s for ViT-B)
        encoder = SliceEncoder(kind)
    try:
        encoder.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise DataError(f"{folder / WEIGHTS_FILE}: does not fit the {kind!r} vision tower: {exc}") from exc
    encoder.weights_digest = config.get("tensor_digest")  # type: ignore[assignment]
    return encoder.eval()


def encoder_base_state(encoder: SliceEncoder) -> dict[str, Tensor]:
    """The encoder's base (non-LoRA) tensors, keyed as in ``vision.safetensors``."""
    return {k: v for k, v in encoder.state_dict().items() if "lora_" not in k}
