"""Frame timing as real sidecars give it (real-data quirk 4: frame tables that disagree with the image)."""
from __future__ import annotations

import pytest

from bids_amyloid.bids.pettiming import read_timing, window_frames

PIB_DYNAMIC = [15] * 4 + [30] * 8 + [60] * 9 + [180] * 2 + [300] * 10  # 33 frames, 0-70 min


def _starts(durations, first=0.0):
    out, clock = [], first
    for d in durations:
        out.append(clock)
        clock += d
    return out


def test_standard_fields_and_pib_window():
    timing, problems = read_timing({"FrameTimesStart": _starts(PIB_DYNAMIC), "FrameDuration": PIB_DYNAMIC},
                                   "x_pet.nii.gz", 33)
    assert not problems and timing.source == "FrameTimesStart/FrameDuration" and timing.ends[-1] == 4200
    used, coverage = window_frames(timing, (50, 70))
    assert used == list(range(29, 33)) and coverage == pytest.approx(1.0)  # the last four 5-minute frames


def test_quirk4_cumulative_end_times_stored_as_durations_are_converted():
    durations = [300.0] * 4
    starts = _starts(durations, 3000.0)
    ends = [s + d for s, d in zip(starts, durations)]
    timing, _ = read_timing({"FrameTimesStart": starts, "FrameDuration": ends}, "x_pet.nii.gz", 4)
    assert timing.durations == tuple(durations) and "cumulative end times" in timing.notes[0]


def test_quirk4_static_image_with_a_second_zero_length_frame():
    """DLBS: one static volume whose JSON lists two frames, the second of duration 0."""
    timing, _ = read_timing({"FrameTimesStart": [3000, 3600], "FrameDuration": [600, 0]}, "x_pet.nii.gz", 1)
    assert timing.starts == (3000.0,) and timing.durations == (600.0,) and "zero-length" in timing.notes[0]


def test_quirk4_frame_count_that_disagrees_with_the_image_is_a_problem():
    timing, problems = read_timing({"FrameTimesStart": list(range(45)), "FrameDuration": [1] * 45},
                                   "x_pet.nii.gz", 21)
    assert timing is None and "45 frame start times for 21 image volume(s)" in problems[0]


def test_quirk5_na_in_frame_times_is_a_problem_not_a_crash():
    timing, problems = read_timing({"FrameTimesStart": [0, "n/a"], "FrameDuration": [60, 60]}, "x_pet.nii.gz", 2)
    assert timing is None and "non-numeric" in problems[0]


def test_starts_rebuilt_from_durations_and_scan_start():
    timing, _ = read_timing({"FrameDuration": [300, 300], "ScanStart": 3000}, "x_pet.nii.gz", 2)
    assert timing.starts == (3000.0, 3300.0) and "contiguous" in timing.notes[0]


def test_injection_start_makes_times_relative_to_injection():
    timing, _ = read_timing({"FrameTimesStart": [3060, 3360], "FrameDuration": [300, 300], "InjectionStart": 60},
                            "x_pet.nii.gz", 2)
    assert timing.starts == (3000.0, 3300.0)


def test_quirk5_draft_time_frametimes_object():
    """OASIS-3 draft sidecars: Time.FrameTimes {Labels, Units, Values}, minutes in one of them."""
    rows = [[s, s + d] for s, d in zip(_starts([300] * 4, 3000), [300] * 4)]
    draft = {"Time": {"FrameTimes": {"Labels": ["frameStart", "frameEnd"], "Units": ["s", "s"], "Values": rows}}}
    timing, _ = read_timing(draft, "x_pet.nii.gz", 4)
    assert timing.source == "Time.FrameTimes" and timing.starts[0] == 3000 and timing.durations == (300.0,) * 4
    minutes = {"FrameTimes": {"FrameTimes": {"Labels": ["start", "end", "duration"], "Units": ["min", "min", "min"],
                                             "Values": [[50, 55, 5], [55, 60, 5]]}}}
    timing, _ = read_timing(minutes, "x_pet.nii.gz", 2)
    assert timing.starts == (3000.0, 3300.0) and timing.durations == (300.0, 300.0)


def test_frame_table_tsv_when_the_json_has_no_timing(tmp_path):
    image = tmp_path / "sub-1_acq-PIB_pet.nii.gz"
    (tmp_path / "sub-1_acq-PIB_pet.tsv").write_text("frame_start\tframe_end\n3000\t3300\n3300\t3600\n")
    timing, problems = read_timing({"TracerName": "PIB"}, image, 2)
    assert timing.source == "_pet.tsv" and timing.durations == (300.0, 300.0) and not problems


def test_no_timing_anywhere_is_said():
    timing, problems = read_timing({}, "x_pet.nii.gz", 4)
    assert timing is None and "no frame timing" in problems[0]


def test_overlapping_frames_are_refused():
    timing, problems = read_timing({"FrameTimesStart": [0, 30], "FrameDuration": [60, 60]}, "x_pet.nii.gz", 2)
    assert timing is None and "overlap" in problems[0]


def test_window_coverage_of_a_short_acquisition():
    timing, _ = read_timing({"FrameTimesStart": [2400, 2700, 3000, 3300], "FrameDuration": [300] * 4},
                            "x_pet.nii.gz", 4)
    used, coverage = window_frames(timing, (50, 70))  # a 40-60 min acquisition
    assert used == [2, 3] and coverage == pytest.approx(0.5)
