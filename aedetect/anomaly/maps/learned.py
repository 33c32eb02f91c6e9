"""The ``learned`` anomaly map: a small segmentation network that reads the input and the
autoencoder's residual and says which pixels are anomalous, trained on self-made anomalies.

Why: on stochastic textures a flat blob of foreign material looks, locally, like the texture's
own out-of-focus patches, so neither the reconstruction error nor the feature distance finds
it; its outline and place give it away, which a network learns once shown examples. They are
made from the normal images alone, as in DRAEM (Zavrtanik et al., ICCV 2021): a smooth blob of
a training image replaced by a transformed piece of another, blurred, or changed in
brightness and contrast; the benchmark's defects (aedetect.anomaly.selection.defects) are
never shown. Measured: docs/decisions/0002.

The network is small (five 3x3 convolutions of 32 channels with dilations 1, 2, 4, 8, 1, a
33-pixel receptive field, and a 1x1 output: about 38,000 weights for grey images) and is stored
in the calibration record of the model file (safetensors bytes, base64, about 0.2 MB), like the
feature banks.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor, nn

from aedetect.data.imageset import ImageSet, scale_to_float


class Segmenter(nn.Module):
    """Per-pixel anomaly logits from (input, input - reconstruction), 2 x C channels in."""

    def __init__(self, channels: int, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 2 * channels
        for dilation in (1, 2, 4, 8, 1):
            layers += [nn.Conv2d(cin, width, 3, padding=dilation, dilation=dilation), nn.BatchNorm2d(width), nn.ReLU()]
            cin = width
        layers.append(nn.Conv2d(width, 1, 1))
        self.net = nn.Sequential(*layers)
        self.channels = channels
        self.width = width

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.net(torch.cat([x, x - y], 1))


def learned_map(seg: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """(N, 1, H, W) anomaly probability of every pixel, from model-space input and reconstruction."""
    return torch.sigmoid(seg(x.float(), y.float()))


# ---- self-made anomalies ------------------------------------------------------------------
def random_blob(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """One connected blob: the largest region of thresholded smooth noise (1-20 % of the image)."""
    noise = ndimage.gaussian_filter(rng.normal(size=(h, w)), sigma=rng.uniform(4, 10) * min(h, w) / 64)
    mask = noise > np.quantile(noise, rng.uniform(0.8, 0.97))
    lab, n = ndimage.label(mask)
    if n > 1:
        mask = lab == (1 + int(np.argmax(np.bincount(lab.ravel())[1:])))
    return mask


MADE_UP_KINDS = ("paste", "blur", "tone")


def synthetic_anomaly(img: np.ndarray, other: np.ndarray, rng: np.random.Generator,
                      kinds: tuple[str, ...] = MADE_UP_KINDS) -> tuple[np.ndarray, np.ndarray]:
    """(C, H, W) image in [0, 1] -> (image with one self-made anomaly, its (H, W) mask).

    Inside a random blob, one of ``kinds``: ``paste`` a piece of ``other`` (another training
    image, same shape), rotated, flipped, maybe enlarged, with new brightness and contrast;
    ``blur`` the image itself; ``tone``: change its brightness and contrast. The mask is the set
    of pixels that moved by more than 2 grey levels, so it is exact.
    """
    c, h, w = img.shape
    mask = random_blob(h, w, rng)
    out = img.copy()
    kind = kinds[int(rng.integers(0, len(kinds)))]
    if kind == "paste":
        turns = int(rng.integers(0, 4)) if h == w else 2 * int(rng.integers(0, 2))  # keep the shape
        src = np.rot90(other, turns, axes=(1, 2))
        if rng.random() < 0.5:
            src = src[:, :, ::-1]
        if rng.random() < 0.5:
            z = rng.uniform(1.5, 4)
            src = ndimage.zoom(src, (1, z, z), order=1)
        new = src[:, :h, :w] * rng.uniform(0.5, 1.5) + rng.uniform(-0.2, 0.2)
    elif kind == "blur":
        new = ndimage.gaussian_filter(img, (0, *(2 * [rng.uniform(1.5, 5)])))
    elif kind == "tone":
        new = img * rng.uniform(0.5, 1.5) + rng.uniform(-0.3, 0.3)
    else:
        raise ValueError(f"unknown made-up anomaly kind {kind!r} (one of {', '.join(MADE_UP_KINDS)})")
    out[:, mask] = np.clip(new, 0, 1)[:, mask]
    return out, mask & (np.abs(out - img).max(0) > 2 / 255)


def train_segmenter(model: nn.Module, images: ImageSet, scaling: str, steps: int, width: int = 32,
                    batch_size: int = 16, device: torch.device | str = "cpu", seed: int = 0,
                    lr: float = 1e-3, kinds: tuple[str, ...] = MADE_UP_KINDS) -> Segmenter:
    """Train a :class:`Segmenter` on ``images`` (the autoencoder's training images), half of each
    batch with one self-made anomaly, for ``steps`` Adam steps of BCE (positives weighted 3)
    plus Dice loss; the autoencoder stays frozen."""
    from aedetect.util.progress import progress_bar

    model.eval()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    data = images.images  # integers; one batch at a time is converted to float
    scale = float(images.max_value)

    def unit(i: int) -> np.ndarray:
        return data[int(i)].numpy().astype(np.float32) / scale

    seg = Segmenter(data.shape[1], width).to(device)
    opt = torch.optim.Adam(seg.parameters(), lr)
    pos_weight = torch.tensor(3.0, device=device)
    seg.train()
    with progress_bar("learned map", steps, hide_below=50) as bar:
        for _ in range(steps):
            pairs = []
            for i in rng.integers(0, len(data), batch_size):
                img = unit(i)
                pairs.append(synthetic_anomaly(img, unit(rng.integers(0, len(data))), rng, kinds) if rng.random() < 0.5
                             else (img, np.zeros(img.shape[1:], dtype=bool)))
            xb = torch.from_numpy(np.stack([p[0] for p in pairs])).to(device)
            mb = torch.from_numpy(np.stack([p[1] for p in pairs])[:, None].astype(np.float32)).to(device)
            with torch.no_grad():
                x = scale_to_float(xb, 1.0, scaling)
                y = model(x).float()
            logit = seg(x, y)
            p = torch.sigmoid(logit)
            loss = (F.binary_cross_entropy_with_logits(logit, mb, pos_weight=pos_weight)
                    + 1 - (2 * (p * mb).sum() + 1) / (p.sum() + mb.sum() + 1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.advance()
            bar.update(info=f"loss {loss.item():.4f}")
    return seg.eval()


# ---- storage in the calibration record ------------------------------------------------------
def encode_segmenter(seg: Segmenter) -> dict[str, Any]:
    """The network as JSON-safe text: its sizes and its weights as safetensors bytes, base64."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in seg.state_dict().items()}
    return {"channels": seg.channels, "width": seg.width,
            "safetensors_base64": base64.b64encode(save(state)).decode("ascii")}


def decode_segmenter(d: dict[str, Any], device: torch.device | str = "cpu") -> Segmenter:
    from safetensors.torch import load

    seg = Segmenter(int(d["channels"]), int(d["width"]))
    seg.load_state_dict(load(base64.b64decode(d["safetensors_base64"])))
    return seg.to(device).eval()
