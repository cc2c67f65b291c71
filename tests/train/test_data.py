"""Training samples and the slice-cache dataset."""
import numpy as np
import pytest
import torch

from bids_amyloid.bids.records import PetScan, Session
from bids_amyloid.errors import DataError
from bids_amyloid.models.inputs import to_model_input
from bids_amyloid.bids.derivatives import Derivatives
from bids_amyloid.train.data import SliceDataset, build_samples, collate, student_samples, teacher_samples


def test_build_samples_counts_what_it_skips(tmp_path, fakes):
    fake_sessions, write_cache, TRACER = fakes.fake_sessions, fakes.write_cache, fakes.TRACER
    slice_cache_path = fakes.slice_cache_path
    sessions = fake_sessions(tmp_path, 4)
    no_pet = Session("09", None, anat={"T1w": tmp_path / "x.nii.gz"}, mri_session=None, centiloid=5.0, label=0)
    write_cache(slice_cache_path(tmp_path, "09", None, "T1w"), np.ones((6, 32, 32)))
    no_cache = Session("10", None, anat={"T1w": tmp_path / "y.nii.gz"}, mri_session=None, centiloid=5.0, label=0)
    no_t1 = Session("11", None, anat={"FLAIR": tmp_path / "z.nii.gz"}, mri_session=None, centiloid=5.0, label=0)
    pet_no_cache = Session("12", None, anat={"T1w": tmp_path / "w.nii.gz"}, mri_session=None,
                           pet=(PetScan(tmp_path / "p.nii.gz", TRACER),), centiloid=50.0, label=1)
    write_cache(slice_cache_path(tmp_path, "12", None, "T1w"), np.ones((6, 32, 32)))
    unlabelled = Session("13", None, anat={"T1w": tmp_path / "v.nii.gz"}, mri_session=None)
    samples, skipped = build_samples(sessions + [no_pet, no_cache, no_t1, pet_no_cache, unlabelled], Derivatives(tmp_path), "T1w")
    assert len(samples) == 6 and len(teacher_samples(samples)) == 4 and len(student_samples(samples)) == 6
    assert skipped == {"no T1w slice cache": 1, "no T1w": 1, "no PET (student only)": 1,
                       "PET without slice cache (student only)": 1, "no label": 1}


def test_dataset_uses_the_mri_slice_choice_for_pet(tmp_path, fakes):
    write_cache, TRACER, slice_cache_path = fakes.write_cache, fakes.TRACER, fakes.slice_cache_path
    n, size = 10, 16
    mri = np.stack([np.full((size, size), 0.1 + 0.05 * i) for i in range(n)])
    pet = np.stack([np.full((size, size), 1.0 + 0.1 * i) for i in range(n)])
    means = [0.0, 0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0]  # valid: slices 2..8
    write_cache(slice_cache_path(tmp_path, "01", None, "T1w"), mri, means)
    write_cache(slice_cache_path(tmp_path, "01", None, "pet", TRACER), pet, [1.0] * n)  # PET means ignored
    sessions = [Session("01", None, anat={"T1w": tmp_path / "a"}, mri_session=None,
                        pet=(PetScan(tmp_path / "p", TRACER),), centiloid=50.0, label=1)]
    samples, _ = build_samples(sessions, Derivatives(tmp_path), "T1w")
    ds = SliceDataset(samples, n_input=3, min_mean=0.01, pet_suvr_scale=3.0, with_pet=True)
    assert ds.slices == [[2, 5, 8]]
    item = ds[0]
    assert item.mri.shape == (3, 3, 224, 224) and item.pet.shape == (3, 3, 224, 224)
    expected = to_model_input(torch.from_numpy(pet[[2, 5, 8]].astype(np.float16).astype(np.float32)), "pet", 3.0)
    assert torch.allclose(item.pet, expected, atol=1e-5)
    batch = collate([ds[0], ds.item(0, pet=False)])
    assert batch.mri.shape[0] == 2 and batch.pet.shape[0] == 1 and batch.pet_rows.tolist() == [0]
    aug = SliceDataset(samples, n_input=3, min_mean=0.01, pet_suvr_scale=3.0, with_pet=True, augment=True, seed=1)
    first = aug[0].mri
    assert torch.equal(first, aug[0].mri)  # seeded by (seed, epoch, index)
    aug.set_epoch(1)
    assert not torch.equal(first, aug[0].mri)


def test_mismatched_pet_cache_is_a_data_error(tmp_path, fakes):
    write_cache, TRACER, slice_cache_path = fakes.write_cache, fakes.TRACER, fakes.slice_cache_path
    write_cache(slice_cache_path(tmp_path, "01", None, "T1w"), np.ones((6, 16, 16)))
    write_cache(slice_cache_path(tmp_path, "01", None, "pet", TRACER), np.ones((6, 8, 8)))
    sessions = [Session("01", None, anat={"T1w": tmp_path / "a"}, mri_session=None,
                        pet=(PetScan(tmp_path / "p", TRACER),), centiloid=50.0, label=1)]
    ds = SliceDataset(build_samples(sessions, Derivatives(tmp_path), "T1w")[0], n_input=3, min_mean=0.01, pet_suvr_scale=3.0,
                      with_pet=True)
    with pytest.raises(DataError, match="do not match"):
        ds[0]


def test_worker_processes_load_the_same_batches(tmp_path, fakes):
    from bids_amyloid.train.data import make_loader
    from bids_amyloid.train.distributed import ClassBalancedSampler, DistContext

    samples, _ = build_samples(fakes.fake_sessions(tmp_path, 4, size=16), Derivatives(tmp_path), "T1w")
    ds = SliceDataset(samples, n_input=2, min_mean=0.01, pet_suvr_scale=3.0, with_pet=True, augment=True, seed=3)
    batches = {}
    for workers in (0, 2):
        sampler = ClassBalancedSampler(ds, ds.labels, DistContext(), seed=1)
        sampler.set_epoch(2)
        ds.set_epoch(2)
        loader = make_loader(ds, batch_size=2, sampler=sampler, workers=workers, seed=0)
        batches[workers] = list(loader)
    for a, b in zip(batches[0], batches[2]):
        assert all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("index", "mri", "pet"))
