"""Label-free selection of the scoring settings (``anomaly.select``), run at calibration.

Why: the best scoring differs by data, and a user has normal images only. So each candidate
(error map x smoothing x image score, alone or plus a latent kNN score; on surfaces the
``pretrained`` map, on convolutional models the ``features`` map) is scored on the held-out
normal images against synthetic anomalies made from them (aedetect.anomaly.selection.synthetic),
and the best by the objective is applied before the threshold is calibrated: the image AUROC
averaged over the families, on surfaces half that and half the pixel AUROC on the local
families' masks (``select_objective = auto``, :func:`alignment`). One forward pass feeds every
candidate; ``select_budget`` can bound the rest. The ``learned`` map is not a candidate (it
trains for minutes). How these choices were measured: docs/decisions/0005-0007 and 0010.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from aedetect.anomaly.maps.latent import knn_distance, latent_vectors, train_latent_bank
from aedetect.anomaly.maps.families.error import error_map
from aedetect.anomaly.maps.family import smooth
from aedetect.anomaly.maps.run import image_score
from aedetect.anomaly.settings import FAMILY_NAMES, OBJECT_FAMILIES, SCORING_KEYS, AnomalySettings
from aedetect.anomaly.selection.synthetic import make_anomalies
from aedetect.core.config import Config
from aedetect.data.imageset import ImageSet, float_to_unit, scale_to_float

log = logging.getLogger("aedetect")

MIN_SELECT_IMAGES = 10  # fewer held-out normal images than this cannot rank candidates
MAPS = ("mse", "l1", "ssim")
SIGMAS = (0.0, 1.0)
AGGREGATIONS: tuple[tuple[str, float], ...] = (("mean", 1.0), ("topk", 1.0), ("topk", 5.0), ("max", 1.0))
LATENT_WEIGHTS = (1.0, 3.0)
MAX_FLOATS = 24_000_000  # images x pixels of one selection pass: about 100 MB per map kind
CHUNK = 256
# Feature vectors the ``features`` map's candidates are ranked with: a sample of the bank the
# head then builds (``feature_bank``, 30,000); the search is costly (docs/decisions/0003).
FEATURE_RANK_BANK = 5000
# A family whose masks cover less than this share of the pixels on average is local: its masks
# say where the anomaly is, and a candidate's map is also ranked by how well it outlines them.
LOCAL_COVERAGE = 0.25
PIXEL_SAMPLE = 100_000  # pixels per image set the pixel AUROC is computed on (seeded)
PIXEL_WEIGHT = 0.5  # objective = (1 - w) x image AUROC + w x pixel AUROC, where local families exist
# ``select_objective = auto``: images whose mean image explains at least this share of the pixel
# variance are aligned objects (ranked by image AUROC alone), the others surfaces (the values
# measured on the benchmark data: docs/anomaly.md).
ALIGNED = 0.1
# ``select_draws = auto``: with few held-out normal images, each is given several anomalies of
# each family, so that a family has at least MIN_ANOMALIES (docs/decisions/0007).
MIN_ANOMALIES = 64
PRETRAINED_CHUNK = 64  # images per pass of the pretrained extractor (its activations at 2x are large)
# Pretrained feature vectors its candidates are ranked with (the head then keeps
# ``pretrained_bank``, 10,000): its search is the costliest candidate (docs/decisions/0010).
PRETRAINED_RANK_BANK = 2000
# Anomalies of each family the pretrained map's candidates are ranked on (with every held-out
# normal image): its extractor at 2x is the selection's costliest pass. None: all of them.
# 32 kept the pick and took a third off the time (docs/decisions/0010).
PRETRAINED_RANK_ANOMALIES: int | None = 32
# The pretrained map's image scores: its top pixels, not its mean. The map measures how new
# each place looks; its mean over the image measures how far the whole crop drifts, which is
# what a crop from another part of the picture does, so it ranks defects worse and flags new
# normal crops (docs/decisions/0010).
PRETRAINED_AGGREGATIONS: tuple[tuple[str, float], ...] = (("topk", 1.0), ("topk", 5.0), ("max", 1.0))
MAX_DRAWS = 8
LOCAL_DEFECTS = ("patch", "scratch", "stain", "hole")  # families_of: local defects on aligned objects
DRAW_SEED_STEP = 1_000_003


def alignment(images: np.ndarray) -> float:
    """The share of the pixel variance the position explains: the spatial variance of the mean
    image over the mean spatial variance of one image, channel by channel (so a colour cast,
    the same everywhere, counts for nothing); near 0 for a stationary surface (every place looks
    alike on average), large for aligned objects (a digit's strokes sit where the mean image is
    bright)."""
    x = images.astype(np.float64)
    per_image = float(x.var(axis=(2, 3)).mean())
    return float(x.mean(0).var(axis=(1, 2)).mean() / per_image) if per_image > 0 else 0.0


def objective_of(s: AnomalySettings, share: float) -> str:
    """``image`` or ``image+pixel``: the given objective, or the one ``auto`` picks by alignment."""
    if s.select_objective != "auto":
        return s.select_objective
    return "image" if share >= ALIGNED else "image+pixel"


def families_of(s: AnomalySettings, share: float, network: bool = True) -> list[str]:
    """The families given, or the ones ``auto`` picks by alignment: on aligned objects those that
    change a shape (:data:`OBJECT_FAMILIES`; the photometric ones ranked the candidates against
    real anomalies, a new digit is a new shape), on surfaces all twelve. Without a network (the
    ImageNet candidates ranked before training, aedetect.anomaly.selection.plan) aligned objects are also
    given the local defects (:data:`LOCAL_DEFECTS`): there the choice is between the map, which
    sees where a place differs, and the whole-image vector, which sees a new shape, and real
    defects of aligned products (a crack in a solar cell) are local."""
    if s.select_families != "auto":
        return list(s.select_families)
    if share < ALIGNED:
        return list(FAMILY_NAMES)
    return list(OBJECT_FAMILIES if network else OBJECT_FAMILIES + LOCAL_DEFECTS)


def draws_of(s: AnomalySettings, n_normal: int, n_families: int, pixels: int) -> int:
    """Anomalies per held-out normal image and family: ``select_draws``, or for ``auto`` enough
    for :data:`MIN_ANOMALIES` per family (4 draws for 17 images, 1 from 64 on), at most
    :data:`MAX_DRAWS` and within :data:`MAX_FLOATS`."""
    if s.select_draws != "auto":
        return int(s.select_draws)
    fit = max(1, (MAX_FLOATS // max(n_normal * pixels, 1) - 1) // max(n_families, 1))
    return max(1, min(MAX_DRAWS, -(-MIN_ANOMALIES // max(n_normal, 1)), fit))


def anomalies_of(normals: np.ndarray, family: str, seed: int, draws: int) -> tuple[np.ndarray, np.ndarray]:
    """``draws`` anomalies of ``family`` per image, each draw from its own seed (the first is
    the seed itself, so one draw is what a single make_anomalies call gives)."""
    made = [make_anomalies(normals, family, seed + DRAW_SEED_STEP * d) for d in range(draws)]
    return np.concatenate([m[0] for m in made]), np.concatenate([m[1] for m in made])


def sample_unit(images: ImageSet, most: int, seed: int) -> np.ndarray:
    """A seeded sample of at most ``most`` of ``images`` (in their order), as floats in [0, 1]."""
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:most].sort().values
    return images.images[pick].numpy().astype(np.float32) / float(images.max_value)


def wants_pretrained(s: AnomalySettings, share: float, what: str) -> bool:
    """Whether the ``pretrained`` map (``what = map``) or latent vector (``latent``) is a
    candidate: ``select_pretrained = on``, or ``auto`` with the map on surfaces and the vector on
    aligned objects (alignment at least :data:`ALIGNED`), each where it was chosen; only where
    the weights are installed."""
    from aedetect.anomaly.maps.backbone import available

    if s.select_pretrained == "off":
        return False
    if s.select_pretrained == "auto" and (share >= ALIGNED) != (what == "latent"):
        return False
    return available()


def wants_selection(cfg: Config, s: AnomalySettings) -> bool:
    """``select = on``, or ``auto`` with no scoring key pinned in ``Config.anomaly``."""
    if s.select == "none":
        return False
    return s.select == "on" or not (set(cfg.anomaly) & SCORING_KEYS)


def auroc(normal: np.ndarray, anomalous: np.ndarray) -> float:
    """AUROC of normal (label 0) against anomalous (label 1) scores, ties counted half: the
    Mann-Whitney statistic, so a few thousand candidate x family pairs cost milliseconds."""
    from scipy.stats import rankdata

    r = rankdata(np.concatenate([normal, anomalous]))
    n0, n1 = normal.size, anomalous.size
    return float((r[n0:].sum() - n1 * (n1 + 1) / 2) / (n0 * n1))


def candidate_name(o: dict[str, Any]) -> str:
    """A short readable name of a candidate's overrides, e.g. ``ssim s1 mean + features/cosine w3``."""
    agg = o["score"] if o["score"] != "topk" else f"top{o['topk_percent']:g}%"
    recon = f"{o['map']} s{o['smooth_sigma']:g} {agg}"
    if o.get("latent") != "knn":
        return recon
    lat = f"{o['latent_source']}/{o['latent_metric']} kNN"
    return lat + " alone" if o.get("recon_weight") == 0 else f"{recon} + {lat} w{o['latent_weight']:g}"


class PixelLabels:
    """A seeded sample of pixel positions of the normal images and of each local family's
    anomalies, with their labels (0 normal, 1 inside the family's mask), for the pixel AUROC of
    a candidate's map: the map a user looks at should outline a defect, not only rank images."""

    def __init__(self, n_normal: int, families: list[str], masks: list[np.ndarray], seed: int,
                 local: list[str] | None = None) -> None:
        """``masks``: each family's (M, H, W) masks, M anomalies per family (``draws`` x n_normal);
        ``local``: the local families when ``masks`` are a sample of each family's (told from
        all of them, so a sample's coverage cannot move a family across the line)."""
        rng = np.random.default_rng(seed)
        hw = masks[0].shape[1] * masks[0].shape[2] if masks else 0
        self.local = local if local is not None else [
            f for f, m in zip(families, masks) if m.mean() < LOCAL_COVERAGE and m.any()]
        self.coverage = {f: round(float(m.mean()), 4) for f, m in zip(families, masks)}
        total = n_normal * hw
        self.normal_idx = np.sort(rng.choice(total, min(PIXEL_SAMPLE, total), replace=False)) if total else None
        self.sets: list[tuple[int, np.ndarray, np.ndarray]] = []  # (set offset, flat index, labels)
        offset = total
        for f, m in zip(families, masks):
            if f in self.local:
                idx = np.sort(rng.choice(m.size, min(PIXEL_SAMPLE, m.size), replace=False))
                self.sets.append((offset, idx, m.ravel()[idx]))
            offset += m.size

    def auroc(self, maps: Tensor) -> float:
        """Mean over the local families of the pixel AUROC of ``maps`` (every image's map, in the
        order of Validation.x: normals, then family by family)."""
        flat = maps.reshape(-1).numpy()
        normal = flat[self.normal_idx]
        vals = []
        for offset, idx, lab in self.sets:
            v = flat[offset + idx]
            vals.append(auroc(np.concatenate([normal, v[~lab]]), v[lab]))
        return float(np.mean(vals))


@dataclass
class Ranked:
    """The validation images a costly candidate is ranked on (:meth:`Validation.ranked`): their
    indices into ``Validation.x`` (normals first, then family by family), how many normals and
    anomalies per family they hold, and the pixel labels of their local families' masks."""

    index: Tensor
    n_normal: int
    per_family: int
    pixels: PixelLabels


class Validation:
    """The held-out normal images, their synthetic anomalies and everything one pass gives."""

    def __init__(self, model: nn.Module, holdout: ImageSet, cfg: Config, s: AnomalySettings,
                 device: torch.device | str, seed: int, top_up: ImageSet | None = None) -> None:
        n, _, h, w = holdout.images.shape
        most = len(FAMILY_NAMES) if s.select_families == "auto" else len(s.select_families)
        per_set = max(8, min(s.select_images, MAX_FLOATS // ((1 + most) * h * w)))
        normals = sample_unit(holdout, per_set, seed)
        self.n_top_up = 0
        if top_up is not None and len(normals) < per_set and top_up.images.shape[1:] == holdout.images.shape[1:]:
            more = sample_unit(top_up, per_set - len(normals), seed + 1)
            normals, self.n_top_up = np.concatenate([normals, more]), len(more)
        self.alignment = alignment(normals)
        self.families = families_of(s, self.alignment, network=cfg.model.arch != "none")
        self.n_normal = normals.shape[0]
        self.draws = draws_of(s, self.n_normal, len(self.families), h * w)
        made = [anomalies_of(normals, f, seed, self.draws) for f in self.families]
        self.has_features = cfg.model.arch == "conv"
        self.has_network = cfg.model.arch != "none"  # none: no reconstruction, no code (aedetect.anomaly.selection.plan)
        self.x = torch.from_numpy(np.concatenate([normals] + [m[0] for m in made]))  # (N, C, H, W) in [0, 1]
        self.objective = objective_of(s, self.alignment)
        self.masks = [m[1] for m in made] if self.objective == "image+pixel" else []  # none: no pixel term
        self.seed = seed
        self.pixels = PixelLabels(self.n_normal, self.families, self.masks, seed)
        self.cfg, self.model, self.device = cfg, model, device
        self.allowed_sources = list(s.select_sources)
        self.backbone: nn.Module | None = None
        if "pretrained" in self.allowed_sources and wants_pretrained(s, self.alignment, "latent"):
            from aedetect.anomaly.maps.backbone import load_backbone

            self.backbone = load_backbone(device)
        self.pretrained_scale = s.pretrained_scale
        self.y, self.vectors = self._run()
        self.pixel_auroc: dict[tuple[str, float], float] = {}  # (map kind, smoothing) -> on the local families

    @torch.no_grad()
    def _run(self) -> tuple[Tensor, dict[str, Tensor]]:
        """Reconstructions in [0, 1] and the raw latent vectors (code; deepest features; pixels)."""
        self.model.eval()
        ys: list[Tensor] = []
        vec: dict[str, list[Tensor]] = {}
        chunk = CHUNK
        if self.backbone is not None:  # its activations, not the images, bound a pass's memory
            from aedetect.anomaly.maps.backbone import LATENT_TARGET_SIDE, feature_batch, scale_of

            size = tuple(self.x.shape[-2:])
            chunk = feature_batch(size, scale_of(self.pretrained_scale, size, LATENT_TARGET_SIDE), CHUNK)  # type: ignore[arg-type]
        for i in range(0, self.x.shape[0], chunk):
            unit = self.x[i:i + chunk].to(self.device)
            xb = scale_to_float(unit, 1.0, self.cfg.data.scaling)
            yb, z, skips = self.model.forward_parts(xb)  # type: ignore[operator]
            ys.append(float_to_unit(yb.float(), self.cfg.data.scaling).cpu())
            for source in self.sources(skips):
                one = AnomalySettings(latent="knn", latent_source=source, pretrained_scale=self.pretrained_scale)
                vec.setdefault(source, []).append(latent_vectors(z, skips, one, xb, self.backbone, unit).cpu())
        return torch.cat(ys), {k: torch.cat(v) for k, v in vec.items()}

    def sources(self, skips: list[Tensor]) -> tuple[str, ...]:
        """The latent vectors tried: those allowed that the model has (``features``: a conv model;
        ``pretrained``: where :func:`wants_pretrained` and the weights allow it)."""
        return tuple(x for x in self.allowed_sources
                     if (skips or x != "features") and (self.backbone is not None or x != "pretrained")
                     and (self.has_network or x != "code"))

    def ranked(self, per_family: int | None) -> Ranked:
        """Every normal image and a seeded sample of at most ``per_family`` anomalies of each
        family (all of them for None), in ``x``'s order."""
        m = self.n_normal * self.draws
        k = m if per_family is None else min(per_family, m)
        g = torch.Generator().manual_seed(self.seed + 17)
        picks = [torch.randperm(m, generator=g)[:k].sort().values for _ in self.families]
        index = torch.cat([torch.arange(self.n_normal)] + [self.n_normal + m * i + p for i, p in enumerate(picks)])
        masks = [f[p.numpy()] for f, p in zip(self.masks, picks)]
        return Ranked(index, self.n_normal, k, PixelLabels(self.n_normal, self.families, masks, self.seed, self.pixels.local))

    def split(self, scores: np.ndarray, ranked: Ranked | None = None) -> dict[str, float]:
        """AUROC per family of one candidate's scores (normals first, then family by family),
        on all the validation images or on those ``ranked`` holds."""
        n, m = (self.n_normal, self.n_normal * self.draws) if ranked is None else (ranked.n_normal, ranked.per_family)
        normal = scores[:n]
        return {f: auroc(normal, scores[n + m * i:n + m * (i + 1)]) for i, f in enumerate(self.families)}

    def recon_scores(self, kind: str, base: AnomalySettings) -> dict[tuple[float, str, float], np.ndarray]:
        """Image scores of one map kind for every smoothing and aggregation candidate."""
        s = replace(base, map=kind, smooth_sigma=0.0)
        raw = torch.cat([error_map(self.x[i:i + CHUNK], self.y[i:i + CHUNK], s)
                         for i in range(0, self.x.shape[0], CHUNK)])
        return self.aggregations(raw, kind)

    @torch.no_grad()
    def feature_scores(self, bank: Tensor, s: AnomalySettings) -> dict[tuple[float, str, float], np.ndarray]:
        """Image scores of the ``features`` map (distance of the encoder features to ``bank``)."""
        from aedetect.anomaly.maps.featuremap import encoder_features, feature_distance_map

        size = tuple(self.x.shape[-2:])
        raw = torch.cat([feature_distance_map(
            encoder_features(self.model, scale_to_float(self.x[i:i + CHUNK].to(self.device), 1.0, self.cfg.data.scaling),
                             s.feature_level, s.feature_pool), bank, s.feature_level, size).cpu()  # type: ignore[arg-type]
            for i in range(0, self.x.shape[0], CHUNK)])
        return self.aggregations(raw, "features")

    @torch.no_grad()
    def pretrained_scores(self, net: nn.Module, bank: Tensor, scale: int,
                          ranked: Ranked) -> dict[tuple[float, str, float], np.ndarray]:
        """Image scores of the ``pretrained`` map (distance of ImageNet features to ``bank``) of
        the images ``ranked`` holds."""
        from aedetect.anomaly.maps.backbone import pretrained_map

        from aedetect.anomaly.maps.backbone import feature_batch

        x = self.x[ranked.index]
        chunk = feature_batch(tuple(x.shape[-2:]), scale, PRETRAINED_CHUNK)  # type: ignore[arg-type]
        raw = torch.cat([pretrained_map(net, x[i:i + chunk].to(self.device), bank, scale).cpu()  # type: ignore[arg-type]
                         for i in range(0, x.shape[0], chunk)])
        return self.aggregations(raw, "pretrained", PRETRAINED_AGGREGATIONS, ranked.pixels)

    def aggregations(self, raw: Tensor, kind: str, aggregations: tuple[tuple[str, float], ...] = AGGREGATIONS,
                     pixels: PixelLabels | None = None) -> dict[tuple[float, str, float], np.ndarray]:
        """Image scores of every smoothing x aggregation of one map kind; records each smoothed
        map's pixel AUROC on the local families' masks on the way (``pixels``: of a
        :class:`Ranked` sample's images, not all of them)."""
        pixels = pixels or self.pixels
        out = {}
        for sigma in SIGMAS:
            m = smooth(raw, sigma)
            if pixels.local:
                self.pixel_auroc[(kind, sigma)] = pixels.auroc(m)
            for how, pct in aggregations:
                out[(sigma, how, pct)] = image_score(m, how, pct).numpy().astype(np.float64)
        return out


def select_settings(model: nn.Module, holdout: ImageSet, train: ImageSet | None, cfg: Config,
                    s: AnomalySettings, device: torch.device | str,
                    top_up: ImageSet | None = None) -> tuple[AnomalySettings, dict[str, Any]]:
    """The settings chosen for ``model`` from normal images alone, and the selection record
    (candidates with their validation AUROC, the choice, the families, the time spent).

    ``top_up``: more normal images the model did not train on (the early-stopping split; the
    caller passes it only under ``select_top_up``), added when ``holdout`` has fewer than
    ``select_images``: with 17 held-out images the pick
    is noisy (docs/decisions/0007)."""
    t0 = time.perf_counter()
    seed = cfg.train.seed
    val = Validation(model, holdout, cfg, s, device, seed, top_up)
    given = {k: getattr(s, k) for k in ("map", "smooth_sigma", "score", "topk_percent")}
    tried: list[dict[str, Any]] = []
    recon: dict[str, np.ndarray] = {}
    skipped = 0
    ranked_on: int | None = None  # anomalies per family the pretrained map was ranked on
    pretrained_maps: dict[str, tuple[np.ndarray, Ranked]] = {}  # its candidates' scores, on the images ranked

    def add(o: dict[str, Any], scores: np.ndarray, ranked: Ranked | None = None) -> None:
        per = val.split(scores, ranked)
        image = float((np.median if s.select_combine == "median" else np.mean)(list(per.values())))
        pixel = val.pixel_auroc.get((o["map"], o["smooth_sigma"])) if val.pixels.local else None
        if val.pixels.local and pixel is None:
            pixel = 0.5  # a map this search did not compute (a given `learned` map): no credit
        tried.append({"name": candidate_name(o), "settings": o, "image_auroc": image, "pixel_auroc": pixel,
                      "auroc": image if pixel is None else (1 - PIXEL_WEIGHT) * image + PIXEL_WEIGHT * pixel,
                      "per_family": {f: round(a, 4) for f, a in per.items()}})

    def over_budget() -> bool:
        return s.select_budget > 0 and time.perf_counter() - t0 > s.select_budget

    for i, kind in enumerate(MAPS if val.has_network else ()):  # no network: every error map is 0
        if i and over_budget():
            skipped += len(SIGMAS) * len(AGGREGATIONS) * (len(MAPS) - i)
            break
        for (sigma, how, pct), sc in val.recon_scores(kind, s).items():
            o = {"map": kind, "smooth_sigma": sigma, "score": how, "topk_percent": pct}
            recon[candidate_name(o)] = sc
            add(o, sc)
    n_recon = len(MAPS) * len(SIGMAS) * len(AGGREGATIONS)  # what the skipped combinations would have been
    if wants_pretrained(s, val.alignment, "map") and train is not None and len(train) >= 2:
        if over_budget():
            skipped += len(SIGMAS) * len(PRETRAINED_AGGREGATIONS)
        else:
            from aedetect.anomaly.maps.backbone import build_pretrained_bank, load_backbone, scale_of, training_pool

            net = val.backbone if val.backbone is not None else load_backbone(device)  # `on`: the vector's too
            scale = scale_of(s.pretrained_scale, tuple(holdout.images.shape[-2:]))
            # from the pool the head's bank will be built from (one pass over the training images)
            training_pool(net, train, scale, s.pretrained_bank * s.pretrained_coreset, device, PRETRAINED_CHUNK, seed)
            bank = build_pretrained_bank(net, train, scale, min(s.pretrained_bank, PRETRAINED_RANK_BANK), device,
                                         PRETRAINED_CHUNK, seed)
            ranked = val.ranked(PRETRAINED_RANK_ANOMALIES)
            ranked_on = ranked.per_family
            for (sigma, how, pct), sc in val.pretrained_scores(net, bank, scale, ranked).items():
                o = {"map": "pretrained", "smooth_sigma": sigma, "score": how, "topk_percent": pct}
                pretrained_maps[candidate_name(o)] = (sc, ranked)
                add(o, sc, ranked)
    n_latent = len(val.vectors) * 2 * (1 + len(LATENT_WEIGHTS) * n_recon)
    if train is None or len(train) < 2:
        log.info("label-free selection: no training images for a latent bank; latent kNN candidates skipped")
        skipped += n_latent
    elif over_budget():
        skipped += n_latent
    else:
        for source, vecs in val.vectors.items():
            sl = AnomalySettings(latent="knn", latent_source=source, latent_bank="train",
                                 latent_bank_size=s.latent_bank_size, latent_k=s.latent_k,
                                 pretrained_scale=s.pretrained_scale)
            bank_raw = train_latent_bank(model, train, cfg, replace(sl, latent_metric="euclidean"), device,
                                         cfg.train.batch_size, seed, val.backbone)
            for metric in ("euclidean", "cosine"):
                if over_budget():
                    skipped += 1 + len(LATENT_WEIGHTS) * n_recon
                    continue
                norm = (lambda v: torch.nn.functional.normalize(v, dim=1)) if metric == "cosine" else (lambda v: v)
                lat = knn_distance(norm(vecs), norm(bank_raw), s.latent_k).numpy().astype(np.float64)
                lat = lat / max(float(np.median(lat[:val.n_normal])), 1e-12)
                lo = {"latent": "knn", "latent_source": source, "latent_metric": metric, "latent_bank": "train"}
                add({**given, **lo, "recon_weight": 0.0, "latent_weight": 1.0}, lat)
                for t in [t for t in tried if t["name"] in recon]:  # reconstruction maps alone; a copy: add() appends
                    rs = recon[t["name"]]
                    rs = rs / max(float(np.median(rs[:val.n_normal])), 1e-12)
                    for w in LATENT_WEIGHTS:
                        add({**t["settings"], **lo, "recon_weight": 1.0, "latent_weight": w}, rs + w * lat)
                if source == "pretrained":  # the ImageNet map plus the ImageNet vector: where a place
                    # differs and how new the whole image is, on the images the map was ranked on
                    for t in [t for t in tried if t["name"] in pretrained_maps]:
                        ms, ranked = pretrained_maps[t["name"]]
                        ms = ms / max(float(np.median(ms[:ranked.n_normal])), 1e-12)
                        for w in LATENT_WEIGHTS:
                            add({**t["settings"], **lo, "recon_weight": 1.0, "latent_weight": w},
                                ms + w * lat[ranked.index.numpy()], ranked)
    n_features = len(SIGMAS) * len(AGGREGATIONS)
    if not val.has_features or train is None or len(train) < 2 or s.feature_level >= len(cfg.model.widths):
        pass  # no encoder feature maps (an mlp model), or no training images for the bank
    elif over_budget():
        skipped += n_features
    else:
        from aedetect.anomaly.maps.featuremap import build_bank

        bank = build_bank(model, train, cfg.data.scaling, s.feature_level, s.feature_pool,
                          min(s.feature_bank, FEATURE_RANK_BANK), device, cfg.train.batch_size, seed)
        for (sigma, how, pct), sc in val.feature_scores(bank, s).items():
            add({"map": "features", "smooth_sigma": sigma, "score": how, "topk_percent": pct}, sc)
    if not tried:
        from aedetect.errors import ConfigError

        raise ConfigError("anomaly.select: no candidate to rank (no network, and select_sources "
                          f"{s.select_sources} holds no ImageNet vector); pin anomaly.map or allow 'pretrained'")
    best = max(range(len(tried)), key=lambda i: tried[i]["auroc"])  # the first of equals: the earlier, cheaper
    chosen = tried[best]
    defaults = {"latent": "none", "recon_weight": 1.0, "latent_weight": 1.0}
    new = replace(s, **{**defaults, **chosen["settings"]})
    new.validate()
    given_name = candidate_name({**given, "latent": s.latent, "latent_source": s.latent_source,
                                 "latent_metric": s.latent_metric, "latent_weight": s.latent_weight,
                                 "recon_weight": s.recon_weight})
    comparable = s.map in MAPS and (s.latent != "knn" or s.latent_bank == "train")  # else no candidate is it
    given_row = next((t for t in tried if t["name"] == given_name), None) if comparable else None
    seconds = time.perf_counter() - t0
    network = families_of(s, val.alignment, network=True)
    comparable = None  # the best objective on the anomalies a trained model's selection would use
    if network != val.families:
        combine = np.median if s.select_combine == "median" else np.mean
        on = [(float(combine([t["per_family"][f] for f in network])), t["name"]) for t in tried]
        comparable = {"families": network, "objective": max(on)[0], "chosen": max(on)[1]}
    record = {
        "mode": s.select, "chosen": chosen["name"], "chosen_settings": chosen["settings"],
        "chosen_auroc": chosen["auroc"], "chosen_image_auroc": chosen["image_auroc"],
        "chosen_pixel_auroc": chosen["pixel_auroc"], "chosen_per_family": chosen["per_family"],
        "objective": ("image AUROC" if not val.pixels.local else
                      f"{1 - PIXEL_WEIGHT:g} x image AUROC + {PIXEL_WEIGHT:g} x pixel AUROC on {', '.join(val.pixels.local)}"),
        "objective_setting": s.select_objective, "combine": s.select_combine, "alignment": round(val.alignment, 4),
        "mask_coverage": val.pixels.coverage,
        "given": given_name, "given_auroc": given_row["auroc"] if given_row else None,
        "families": val.families, "families_setting": s.select_families,
        "normal_images": val.n_normal, "normal_images_from_early_stopping": val.n_top_up,
        "anomalies_per_family": val.n_normal * val.draws, "draws": val.draws,
        "pretrained_ranked_on": ranked_on,
        **({"on_network_families": comparable} if comparable else {}),
        "candidates_scored": len(tried), "candidates_skipped": skipped, "seconds": round(seconds, 2),
        "budget_s": s.select_budget,
        "candidates": [{"name": t["name"], "auroc": round(t["auroc"], 5), "image_auroc": round(t["image_auroc"], 5),
                        **({"pixel_auroc": round(t["pixel_auroc"], 5)} if t["pixel_auroc"] is not None else {})}
                       for t in tried],
    }
    log.info("label-free selection: %d candidates (%d skipped) on %d held-out normal images and %d synthetic "
             "anomalies of each of %d families in %.1f s (budget %g s): %s, validation objective %.4f%s "
             "(given settings %s: %s)", len(tried), skipped, val.n_normal, val.n_normal * val.draws, len(val.families),
             seconds, s.select_budget, chosen["name"], chosen["auroc"],
             "" if chosen["pixel_auroc"] is None else
             f" (image AUROC {chosen['image_auroc']:.4f}, pixel AUROC {chosen['pixel_auroc']:.4f})", given_name,
             f"{given_row['auroc']:.4f}" if given_row else "not a candidate")
    return new, record
