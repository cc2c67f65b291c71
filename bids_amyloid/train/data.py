"""Training samples and the dataset that reads them from the slice cache (docs/dev/README.md).

One :class:`TrainingSample` per labelled (session, contrast, PET tracer); a session without a
PET slice cache gives one sample with ``pet=None``: it can train the student (MRI only) but not
the teacher. The slice choice is the MRI's (:func:`select_slices` on its ``SliceMean``) and the
PET uses the same indices. Arrays are memory-mapped, so a worker reads only the chosen slices.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bids_amyloid.bids.derivatives import Derivatives
from bids_amyloid.bids.names import session_key
from bids_amyloid.bids.records import Session
from bids_amyloid.errors import DataError
from bids_amyloid.models.inputs import select_slices, to_model_input
from bids_amyloid.train.augment import augment_pair
from bids_amyloid.train.runtime import generator

log = logging.getLogger("bids_amyloid.train")


@dataclass(frozen=True)
class TrainingSample:
    subject: str
    session: str | None
    contrast: str
    label: int
    centiloid: float | None
    mri: Path
    """MRI slice cache (.npy) of ``contrast``."""
    pet: Path | None = None
    """PET slice cache, or None (student only)."""
    tracer: str | None = None

    @property
    def key(self) -> str:
        return session_key(self.subject, self.session)


def build_samples(sessions: Sequence[Session], layout: Derivatives, contrast: str
                  ) -> tuple[list[TrainingSample], Counter]:
    """The training samples of one contrast, and counts of what was skipped (and why)."""
    samples, skipped = [], Counter()
    for s in sessions:
        if s.label is None:
            skipped["no label"] += 1
            continue
        if contrast not in s.anat:
            skipped[f"no {contrast}"] += 1
            continue
        paths = layout.session(s.subject, s.session, mri_session=s.mri_session)
        mri = paths.slices(contrast)
        if not mri.exists():
            skipped[f"no {contrast} slice cache"] += 1
            continue
        pets = [(p.tracer, paths.pet_slices(p.tracer)) for p in s.pet]
        pets = [(t, path) for t, path in pets if path.exists()]
        if s.pet and not pets:
            skipped["PET without slice cache (student only)"] += 1
        elif not s.pet:
            skipped["no PET (student only)"] += 1
        base = dict(subject=s.subject, session=s.session, contrast=contrast, label=int(s.label),
                    centiloid=s.centiloid, mri=mri)
        samples += [TrainingSample(**base, pet=path, tracer=t) for t, path in pets] or [TrainingSample(**base)]
    return samples, skipped


def teacher_samples(samples: Sequence[TrainingSample]) -> list[TrainingSample]:
    """Samples with PET (one per tracer)."""
    return [s for s in samples if s.pet is not None]


def student_samples(samples: Sequence[TrainingSample]) -> list[TrainingSample]:
    """One sample per (session, contrast): the student never sees PET, so tracers collapse."""
    seen, out = set(), []
    for s in samples:
        if (s.key, s.contrast) not in seen:
            seen.add((s.key, s.contrast))
            out.append(s)
    return out


def read_slice_means(path: Path) -> list[float]:
    sidecar = Path(path).with_suffix(".json")
    try:
        return [float(v) for v in json.loads(sidecar.read_text())["SliceMean"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{sidecar}: missing or invalid slice-cache sidecar ({exc}); rerun participant level") from exc


@dataclass
class Item:
    """One sample as the dataset gives it (PET only where the sample has it and it is asked for)."""

    label: torch.Tensor
    index: int
    mri: torch.Tensor | None = None
    """[S, 3, 224, 224] model input."""
    mri_path: str | None = None
    """Its slice cache (the key of the frozen-prefix cache)."""
    pet: torch.Tensor | None = None
    pet_path: str | None = None


@dataclass
class Batch:
    """A collated batch; ``pet`` is stacked for the rows that have PET (``pet_rows`` says which)."""

    label: torch.Tensor
    index: torch.Tensor
    mri: torch.Tensor | None = None
    mri_path: list[str] = field(default_factory=list)
    pet: torch.Tensor | None = None
    pet_path: list[str] = field(default_factory=list)
    pet_rows: torch.Tensor | None = None

    def images(self, modality: str) -> torch.Tensor:
        """``mri`` or ``pet`` images."""
        return self.mri if modality == "mri" else self.pet

    def paths(self, modality: str) -> list[str]:
        return self.mri_path if modality == "mri" else self.pet_path

    def _map(self, fn) -> Batch:
        return dataclasses.replace(self, **{f.name: fn(getattr(self, f.name)) for f in dataclasses.fields(self)
                                            if isinstance(getattr(self, f.name), torch.Tensor)})

    def to(self, device: torch.device, non_blocking: bool = False) -> Batch:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """DataLoader(pin_memory=True) calls this: page-locked tensors for fast GPU copies."""
        return self._map(lambda t: t.pin_memory())


class SliceDataset(Dataset):
    """``dataset[i]`` -> ``{"mri": [S,3,224,224], "pet": [S,3,224,224], "label", "index"}``.

    ``with_pet``: True (every sample has PET), False (MRI only) or None (PET where available;
    :func:`collate` then marks the rows that have it).

    With ``augment`` the parameters come from a generator seeded by ``(seed, epoch, i)``
    (:meth:`set_epoch`), so an item is the same whichever worker or process loads it.
    """

    def __init__(self, samples: Sequence[TrainingSample], *, n_input: int, min_mean: float,
                 pet_suvr_scale: float, with_pet: bool | None, augment: bool = False, seed: int = 0):
        if with_pet and any(s.pet is None for s in samples):
            raise ValueError("with_pet needs samples that all have PET")
        self.samples = list(samples)
        self.slices = [select_slices(read_slice_means(s.mri), n_input, min_mean, source=str(s.mri))
                       for s in self.samples]
        self.pet_suvr_scale, self.with_pet = pet_suvr_scale, with_pet
        self.augment, self.seed, self.epoch = augment, seed, 0

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]

    @staticmethod
    def _read(path: Path, index: list[int]) -> tuple[torch.Tensor, int]:
        """The chosen slices (float32) and the number of slices in the file."""
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: unreadable slice cache ({exc}); rerun participant level") from exc
        if array.ndim != 3 or max(index) >= array.shape[0]:
            raise DataError(f"{path}: slice cache has shape {array.shape}, expected [n_slices, H, W]")
        return torch.from_numpy(np.asarray(array[index], dtype=np.float32)), array.shape[0]

    def item(self, i: int, *, mri: bool = True, pet: bool | None = None) -> Item:
        sample, index = self.samples[i], self.slices[i]
        if pet is None:
            pet = sample.pet is not None if self.with_pet is None else self.with_pet
        x_mri, n_mri = self._read(sample.mri, index) if mri else (None, None)
        x_pet = None
        if pet:
            x_pet, n_pet = self._read(sample.pet, index)
            if x_mri is not None and (n_pet != n_mri or x_pet.shape != x_mri.shape):
                raise DataError(f"{sample.pet}: {n_pet} slices of {tuple(x_pet.shape[1:])} do not match the MRI "
                                f"slice cache {sample.mri} ({n_mri} of {tuple(x_mri.shape[1:])})")
        if self.augment:
            x_mri, x_pet, _ = augment_pair(x_mri, x_pet, generator(self.seed, "augment", self.epoch, i),
                                           self.pet_suvr_scale)
        item = Item(torch.tensor(float(sample.label)), i)
        if mri:
            item.mri, item.mri_path = to_model_input(x_mri, "mri"), str(sample.mri)
        if pet:
            item.pet, item.pet_path = to_model_input(x_pet, "pet", self.pet_suvr_scale), str(sample.pet)
        return item

    def __getitem__(self, i: int) -> Item:
        return self.item(i)

    def pet_batch(self, indices: Sequence[int]) -> Batch:
        """PET inputs of ``indices`` (phase-1 negatives)."""
        return collate([self.item(int(i), mri=False, pet=True) for i in indices])


def collate(items: list[Item]) -> Batch:
    """Stack items; PET is stacked for the items that have it, ``pet_rows`` says which."""
    batch = Batch(torch.stack([it.label for it in items]), torch.tensor([it.index for it in items]))
    if items[0].mri is not None:
        batch.mri, batch.mri_path = torch.stack([it.mri for it in items]), [it.mri_path for it in items]
    rows = [j for j, it in enumerate(items) if it.pet is not None]
    if rows:
        batch.pet, batch.pet_path = torch.stack([items[j].pet for j in rows]), [items[j].pet_path for j in rows]
        batch.pet_rows = torch.tensor(rows)
    return batch


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(dataset: Dataset, *, batch_size: int, sampler: Sampler | None, workers: int, seed: int,
                pin_memory: bool = False) -> DataLoader:
    """DataLoader with seeded workers (``workers`` = config.train.workers)."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=workers,
                      collate_fn=collate, worker_init_fn=_seed_worker, generator=torch.Generator().manual_seed(seed),
                      pin_memory=pin_memory, drop_last=False)
