"""The map families by name: ``anomaly.map`` -> its :class:`~aedetect.anomaly.maps.family.MapFamily`,
and what every family shares, the ImageNet extractor (the ``pretrained`` map and latent vector).

Scoring, calibration, the model-file checks and the export look a family up here
(:func:`family_of`) and ask it; none of them compares map names. :func:`register` adds a
family (docs/architecture.md); the built-in ones are registered below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aedetect.anomaly import settings
from aedetect.anomaly.maps.families.error import ERROR_MAPS
from aedetect.anomaly.maps.families.features import FEATURES
from aedetect.anomaly.maps.families.learned import LEARNED
from aedetect.anomaly.maps.families.pretrained import PRETRAINED
from aedetect.anomaly.maps.family import MapFamily, MapState
from aedetect.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from aedetect.anomaly.settings import AnomalySettings

BACKBONE_KEY = "pretrained_backbone"  # the record's stored extractor, of whichever part uses it

_FAMILIES: dict[str, MapFamily] = {}


def register(family: MapFamily) -> MapFamily:
    """Make ``family`` the one for each of its names, and those names valid ``anomaly.map``
    values (:func:`aedetect.anomaly.settings.allow_map`). A name already taken by another
    family is refused: two families for one name would make a model file mean two things."""
    if not family.names:
        raise ValueError(f"{type(family).__name__}: a map family needs at least one name")
    for name in family.names:
        other = _FAMILIES.get(name)
        if other is not None and other is not family:
            raise ValueError(f"anomaly.map {name!r} is already {type(other).__name__}'s")
    for name in family.names:
        _FAMILIES[name] = family
        settings.allow_map(name)
    return family


def family_of(s: AnomalySettings | str) -> MapFamily:
    """The family of the settings' ``map`` (or of a map name)."""
    name = s if isinstance(s, str) else s.map
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ConfigError(f"anomaly.map: {name!r} is not one of {', '.join(_FAMILIES)}") from None


def families() -> list[MapFamily]:
    """Each registered family once, in the order registered."""
    return list(dict.fromkeys(_FAMILIES.values()))


def uses_backbone(s: AnomalySettings) -> bool:
    """Whether the scoring needs the ImageNet extractor (aedetect.anomaly.maps.backbone): for
    the map, or for the latent vector (``latent = knn``, ``latent_source = pretrained``)."""
    return family_of(s).needs_backbone or (s.latent == "knn" and s.latent_source == "pretrained")


def decode_state(cal: dict[str, Any], s: AnomalySettings, device: torch.device | str) -> MapState:
    """The scoring state a calibration record holds: the map family's, with the extractor
    where the settings use one."""
    from dataclasses import replace

    state = family_of(s).decode(cal, device)
    if not uses_backbone(s):
        return state
    from aedetect.anomaly.maps.backbone import decode_backbone

    return replace(state, backbone=decode_backbone(cal[BACKBONE_KEY], device))


for _family in (ERROR_MAPS, FEATURES, PRETRAINED, LEARNED):
    register(_family)
