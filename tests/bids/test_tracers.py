"""Tracer identification (real-data quirks 2 and 8: tracer spellings, non-amyloid PET in the tree)."""
from __future__ import annotations

import pytest

from bids_amyloid.bids import tracers
from bids_amyloid.bids.tracers import identify, match_label, parse_suvr_window, parse_tracer_map
from bids_amyloid.errors import UsageError


@pytest.mark.parametrize("label, family", [
    ("11CPIB", "PiB"), ("PIB", "PiB"), ("[11C]PiB", "PiB"), ("Pittsburgh Compound B", "PiB"),
    ("18FAV45", "florbetapir"), ("AV45", "florbetapir"), ("FBP", "florbetapir"), ("Amyvid", "florbetapir"),
    ("18F-AV-45", "florbetapir"), ("Florbetapir F 18", "florbetapir"),
    ("18FFBB", "florbetaben"), ("FBB", "florbetaben"), ("Neuraceq", "florbetaben"),
    ("18FFMM", "flutemetamol"), ("FMM", "flutemetamol"), ("Vizamyl", "flutemetamol"),
    ("NAV4694", "NAV4694"), ("18F-NAV4694", "NAV4694"),
])
def test_quirk2_tracer_spellings_map_to_one_family(label, family):
    assert match_label(label).family.key == family


@pytest.mark.parametrize("label, name", [("18FFDG", "FDG"), ("FDG", "FDG"), ("18FAV1451", "flortaucipir"),
                                         ("AV1451", "flortaucipir"), ("MK6240", "MK6240"), ("18F-PI-2620", "PI2620")])
def test_quirk8_non_amyloid_tracers_are_recognised(label, name):
    match = match_label(label)
    assert match.family is None and match.non_amyloid == name and match.known


def test_unknown_and_ambiguous_labels_stay_unknown():
    assert not match_label("XYZ123").known
    assert not match_label("PIB and FDG").known  # two tracers named: the user decides


def test_overrides_map_or_skip_a_label():
    overrides = parse_tracer_map(["18F-XYZ=florbetapir", "FDG=skip", "11CPIB=PIB"])
    assert match_label("18FXYZ", overrides).family.key == "florbetapir"
    assert match_label("18FFDG", overrides).non_amyloid  # FDG stays non-amyloid
    assert match_label("11CPIB", overrides).family.key == "PiB"
    with pytest.raises(UsageError, match="LABEL=FAMILY"):
        parse_tracer_map(["florbetapir"])
    with pytest.raises(UsageError, match="unknown family"):
        parse_tracer_map(["X=florbetazine"])


def test_quirk2_tracer_from_trc_then_acq_then_sidecar():
    assert identify({"tracer": "11CPIB"}, {}).source == "trc"
    oasis = identify({"acquisition": "AV45"}, {})  # OASIS-3: acq-AV45, no trc-
    assert (oasis.match.family.key, oasis.source) == ("florbetapir", "acq")
    draft = identify({"acquisition": "dynamic"}, {"Tracer": {"Name": "PIB", "Isotope": "C11"}})
    assert (draft.match.family.key, draft.source) == ("PiB", "Tracer.Name")  # quirk 5: draft sidecar
    info = identify({}, {"Info": {"Tracer": {"Name": "Florbetaben"}}})
    assert info.match.family.key == "florbetaben" and info.source == "Info.Tracer"
    flat = identify({}, {"Tracer.Name": "FMM"})
    assert flat.match.family.key == "flutemetamol"
    nothing = identify({}, {})
    assert not nothing.match.known and nothing.source == "none"


def test_conflicting_places_are_reported_and_the_entity_wins():
    ident = identify({"tracer": "18FAV45"}, {"TracerName": "FDG"})
    assert ident.match.family.key == "florbetapir" and ident.conflicts == ("TracerName 'FDG'",)


def test_every_family_has_a_window_and_valid_label():
    for fam in tracers.FAMILIES:
        assert fam.key.isalnum() and fam.suvr_window_min[0] < fam.suvr_window_min[1]
    assert tracers.family("pib").suvr_window_min == (50.0, 70.0)
    assert tracers.family("florbetaben").centiloid == (153.4, -154.9)


def test_suvr_window_option():
    assert parse_suvr_window(["40", "60"]) == {"all": (40.0, 60.0)}
    assert parse_suvr_window(["pib=40-60", "florbetapir=50-70"]) == {"PiB": (40.0, 60.0), "florbetapir": (50.0, 70.0)}
    assert parse_suvr_window(None) == {}
    with pytest.raises(UsageError, match="FAMILY=START-END"):
        parse_suvr_window(["XYZ=1-2"])
