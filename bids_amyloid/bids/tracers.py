"""Which tracer a PET scan used, as one of the amyloid tracer families, and what each family needs.

The one table of tracer knowledge: :data:`FAMILIES` (amyloid tracers: the spellings datasets use,
the default SUVR window and the published Centiloid equation) and :data:`NON_AMYLOID` (tracers
that are recognised and skipped). A label is matched after normalisation: upper case, letters and
digits only, isotope prefixes/suffixes (11C, 18F, C11, F18) removed, so ``[11C]PiB``, ``11CPIB``
and ``PIB`` all read as PiB. Users map any other label with ``--pet-tracer LABEL=FAMILY``.

Where the tracer is read (first recognised wins; a disagreement is logged):
``trc-`` entity, ``acq-`` entity (OASIS-3 names PET ``acq-PIB`` / ``acq-AV45``), sidecar
``TracerName``, draft sidecar ``Tracer.Name`` / ``Info.Tracer``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bids_amyloid.bids.sidecars import lookup
from bids_amyloid.errors import UsageError


@dataclass(frozen=True)
class TracerFamily:
    key: str
    """Label used in derivative names (``trc-<key>``) and tables."""
    name: str
    aliases: tuple[str, ...]
    """Normalised spellings (see :func:`normalise`)."""
    suvr_window_min: tuple[float, float]
    """Default static SUVR window, minutes after injection (Centiloid calibrations, common protocols)."""
    centiloid: tuple[float, float] | None
    """(slope, intercept) of Centiloid = slope * SUVR + intercept, or None when no equation is used."""
    centiloid_reference: str | None


FAMILIES: tuple[TracerFamily, ...] = (
    TracerFamily("PiB", "[11C]Pittsburgh compound B", ("PIB", "PITTSBURGHCOMPOUNDB"), (50.0, 70.0),
                 (93.7, -94.6), "Klunk et al. 2015, Alzheimers Dement 11:1"),
    TracerFamily("florbetapir", "[18F]florbetapir (Amyvid, AV-45)", ("AV45", "FBP", "AMYVID", "FLORBETAPIR"),
                 (50.0, 60.0), (175.4, -182.3), "Navitsky et al. 2018, Alzheimers Dement 14:1565"),
    TracerFamily("florbetaben", "[18F]florbetaben (Neuraceq)", ("FBB", "NEURACEQ", "FLORBETABEN", "BAY949172"),
                 (90.0, 110.0), (153.4, -154.9), "Rowe et al. 2017, Eur J Nucl Med Mol Imaging 44:2053"),
    TracerFamily("flutemetamol", "[18F]flutemetamol (Vizamyl)", ("FMM", "VIZAMYL", "FLUTEMETAMOL", "GE067"),
                 (90.0, 110.0), (121.42, -121.16), "Battle et al. 2018, EJNMMI Res 8:107"),
    TracerFamily("NAV4694", "[18F]NAV4694 (flutafuranol, AZD4694)", ("NAV4694", "AZD4694", "FLUTAFURANOL"),
                 (50.0, 70.0), None, None),
)
"""Amyloid tracer families the app models."""

NON_AMYLOID: dict[str, tuple[str, ...]] = {
    "FDG": ("FDG", "FLUORODEOXYGLUCOSE"),
    "flortaucipir": ("AV1451", "FTP", "FLORTAUCIPIR", "T807", "TAUVID"),
    "MK6240": ("MK6240", "FLORQUINITAU"),
    "PI2620": ("PI2620",),
    "RO948": ("RO948", "RO6958948"),
    "PBR28": ("PBR28",),
    "UCB-J": ("UCBJ",),
    "FDOPA": ("FDOPA", "DOPA"),
    "raclopride": ("RACLOPRIDE",),
    "flumazenil": ("FMZ", "FLUMAZENIL"),
    "THK5351": ("THK5351",),
}
"""Recognised non-amyloid tracers (tau, glucose, ...): skipped with one log line."""

SKIP = "skip"
"""``--pet-tracer LABEL=skip``: treat the label as a non-amyloid tracer."""

_ISOTOPE = re.compile(r"^(11C|18F|C11|F18)|(11C|18F|C11|F18)$")


def normalise(label: str) -> str:
    """``[11C]PiB`` -> ``PIB``, ``18F-AV-45`` -> ``AV45``, ``Florbetapir F 18`` -> ``FLORBETAPIR``."""
    text = re.sub(r"[^A-Z0-9]", "", str(label).upper())
    stripped = _ISOTOPE.sub("", text)
    return stripped or text


def family(key: str) -> TracerFamily:
    """The family with this key (case-insensitive)."""
    for fam in FAMILIES:
        if fam.key.lower() == key.lower():
            return fam
    raise KeyError(key)


@dataclass(frozen=True)
class TracerMatch:
    """What a label means: an amyloid family, a non-amyloid tracer, or nothing known."""

    label: str
    family: TracerFamily | None = None
    non_amyloid: str | None = None

    @property
    def known(self) -> bool:
        return self.family is not None or self.non_amyloid is not None


def match_label(label: str, overrides: Mapping[str, str] | None = None) -> TracerMatch:
    """Classify one label; ``overrides`` maps labels (any spelling) to a family key or ``skip``."""
    norm = normalise(label)
    for raw, target in (overrides or {}).items():
        if normalise(raw) == norm:
            return TracerMatch(label, non_amyloid=f"{label} (--pet-tracer)") if target == SKIP else \
                TracerMatch(label, family=family(target))
    fams = [f for f in FAMILIES if norm in f.aliases]
    others = [name for name, aliases in NON_AMYLOID.items() if norm in aliases]
    if not fams and not others:  # longer spellings: "11C-PIB (Pittsburgh compound B)"
        fams = [f for f in FAMILIES if any(_contains(norm, a) for a in f.aliases)]
        others = [name for name, aliases in NON_AMYLOID.items() if any(_contains(norm, a) for a in aliases)]
    if len(fams) + len(others) != 1:
        return TracerMatch(label)  # unknown or ambiguous: the user decides with --pet-tracer
    return TracerMatch(label, family=fams[0]) if fams else TracerMatch(label, non_amyloid=others[0])


def _contains(text: str, alias: str) -> bool:
    # three-letter abbreviations (PIB, FDG) only at either end: inside longer words they are noise
    return alias in text if len(alias) >= 4 else text.startswith(alias) or text.endswith(alias)


@dataclass(frozen=True)
class TracerId:
    """The tracer of one PET scan and where it was read."""

    match: TracerMatch
    source: str
    """'trc', 'acq', 'TracerName', 'Tracer.Name', 'Info.Tracer' or 'none'."""
    conflicts: tuple[str, ...] = ()
    """Other places that named a different tracer (logged)."""


def identify(entities: Mapping[str, Any], sidecar: Mapping[str, Any], overrides: Mapping[str, str] | None = None
             ) -> TracerId:
    """The tracer of a PET scan from its entities and sidecar (module docstring for the order)."""
    candidates = [("trc", entities.get("tracer")), ("acq", entities.get("acquisition"))]
    from_sidecar: set[str] = set()
    for key in ("TracerName", "Tracer.Name", "Info.Tracer.Name", "Info.Tracer"):
        value = lookup(sidecar, key)
        if isinstance(value, str) and value.strip() and value not in from_sidecar:  # Tracer.Name finds TracerName too
            from_sidecar.add(value)
            candidates.append((key.removesuffix(".Name") if key.startswith("Info") else key, value))
    found = [(src, match_label(str(v), overrides)) for src, v in candidates if v not in (None, "")]
    known = [(src, m) for src, m in found if m.known]
    if not known:
        return TracerId(found[0][1], found[0][0]) if found else TracerId(TracerMatch(""), "none")
    source, chosen = known[0]
    conflicts = tuple(f"{src} {m.label!r}" for src, m in known[1:]
                      if (m.family, m.non_amyloid) != (chosen.family, chosen.non_amyloid))
    return TracerId(chosen, source, conflicts)


def parse_tracer_map(items: list[str] | None) -> dict[str, str]:
    """``["XYZ=PiB", "ABC=skip"]`` -> ``{"XYZ": "PiB", "ABC": "skip"}`` (``--pet-tracer``)."""
    out: dict[str, str] = {}
    for item in items or []:
        label, sep, target = item.partition("=")
        if not sep or not label.strip() or not target.strip():
            raise UsageError(f"--pet-tracer {item!r}: use LABEL=FAMILY, e.g. 18FXYZ=florbetapir or FDG=skip")
        target = target.strip()
        if target.lower() == SKIP:
            out[label.strip()] = SKIP
            continue
        try:
            out[label.strip()] = family(target).key
        except KeyError:
            keys = ", ".join(f.key for f in FAMILIES)
            raise UsageError(f"--pet-tracer {item!r}: unknown family {target!r}; use one of {keys} or skip") from None
    return out


def parse_suvr_window(tokens: list[str] | None) -> dict[str, tuple[float, float]]:
    """``["40", "60"]`` -> ``{"all": (40, 60)}``; ``["PiB=40-60", ...]`` -> per family (``--suvr-window``)."""
    if not tokens:
        return {}
    try:
        if len(tokens) == 2 and "=" not in "".join(tokens):
            return {"all": (float(tokens[0]), float(tokens[1]))}
        out = {}
        for token in tokens:
            name, _, span = token.partition("=")
            start, _, end = span.partition("-")
            out[family(name).key if name.lower() != "all" else "all"] = (float(start), float(end))
        return out
    except (KeyError, ValueError):
        keys = ", ".join(f.key for f in FAMILIES)
        raise UsageError(f"--suvr-window {' '.join(tokens)}: use START END (minutes, every tracer) or "
                         f"FAMILY=START-END with FAMILY one of {keys}") from None
