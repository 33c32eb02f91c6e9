"""First-layer filters and activation maps, captured with forward hooks.

The "first layer" is the first convolution (``encoder[0].convs[0]``) of a
:class:`~aedetect.core.model.cae.ConvAutoencoder`, or the first Linear layer of the ``mlp`` arch,
whose weight rows are shown as images of the input's shape. "Before and after the activation
function" are the input and output of that layer's activation module (a pre-hook clones
the input before an in-place ReLU overwrites it). The decoder's output is probed the same
way at the output activation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from aedetect.core.model.codes import grid_shape


@dataclass
class Probe:
    """What one hooked module saw: the tensor entering and the tensor leaving it."""

    before: Tensor | None = None
    after: Tensor | None = None


def first_layer(model: nn.Module) -> tuple[nn.Module, nn.Module | None]:
    """(the first conv/linear layer, the activation module applied to its output or None)."""
    if model.config.arch == "mlp":  # type: ignore[attr-defined]
        enc = list(model.mlp_encoder)  # type: ignore[attr-defined]
        lin = enc[1]
        act = enc[2] if len(enc) > 2 and not isinstance(enc[2], nn.Linear) else None
        return lin, act
    block = model.encoder[0].convs[0]  # type: ignore[attr-defined]
    return block[0], block[-1]


def output_activation(model: nn.Module) -> nn.Module:
    """The module applying the decoder's final activation (sigmoid / tanh / identity)."""
    c = model.config  # type: ignore[attr-defined]
    if c.arch == "mlp":
        return list(model.mlp_decoder)[-2]  # type: ignore[attr-defined]
    if c.output_conv:
        return model.head[-1]  # type: ignore[attr-defined]
    return model.decoder[-1].convs[-1][-1]  # type: ignore[attr-defined]


@torch.no_grad()
def probe(model: nn.Module, x: Tensor) -> tuple[Probe, Probe, Tensor]:
    """Run ``x`` (1, C, H, W) through the model; returns (first layer, decoder output, y).

    Without an activation after the first layer (an mlp with one linear code layer), its
    output is both "before" and "after".
    """
    model.eval()
    first, act = first_layer(model)
    out_act = output_activation(model)
    p_first, p_out = Probe(), Probe()
    handles = []

    def pre(store: Probe):  # type: ignore[no-untyped-def]
        def hook(_m: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            store.before = inputs[0].detach().clone()
        return hook

    def post(store: Probe, both: bool = False):  # type: ignore[no-untyped-def]
        def hook(_m: nn.Module, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
            store.after = output.detach().clone()
            if both:
                store.before = store.after
        return hook

    if act is None:
        handles.append(first.register_forward_hook(post(p_first, both=True)))
    else:
        handles.append(act.register_forward_pre_hook(pre(p_first)))
        handles.append(act.register_forward_hook(post(p_first)))
    handles.append(out_act.register_forward_pre_hook(pre(p_out)))
    handles.append(out_act.register_forward_hook(post(p_out)))
    try:
        y = model(x)
    finally:
        for h in handles:
            h.remove()
    return p_first, p_out, y


def normalize_tiles(x: Tensor, ref: Tensor | None = None) -> Tensor:
    """Scale each tile (dim 0) to [0, 1] by the min/max of ``ref`` (default: itself).

    Using the pre-activation tiles as ``ref`` for the post-activation ones keeps both on one
    scale, so what the activation function cut off shows as a flat region.
    """
    ref = x if ref is None else ref
    flat = ref.reshape(ref.shape[0], -1)
    lo = flat.min(1).values.view(-1, *([1] * (x.ndim - 1)))
    hi = flat.max(1).values.view(-1, *([1] * (x.ndim - 1)))
    return ((x - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)


def vector_as_image(v: Tensor) -> Tensor:
    """A 1-D activation vector as a near-square (1, 1, rows, cols) image, zero-padded."""
    n = v.numel()
    rows, cols = grid_shape(n)
    out = torch.zeros(rows * cols, dtype=v.dtype, device=v.device)
    out[:n] = v.flatten()
    return out.view(1, 1, rows, cols)


def filter_tiles(model: nn.Module, max_filters: int = 64) -> Tensor:
    """(N, C, k, k) first-layer filters, or the first-layer weight rows as (N, C, H, W) images
    for the mlp arch; each scaled to [0, 1]."""
    first, _ = first_layer(model)
    w = first.weight.detach().float().cpu()
    c = model.config  # type: ignore[attr-defined]
    if c.arch == "mlp":
        h, wd = c.input_size
        w = w.view(-1, c.in_channels, h, wd)
    elif w.shape[1] not in (1, 3):
        w = w[:, :1]
    return normalize_tiles(w[:max_filters])


def channel_tiles(a: Tensor, ref: Tensor | None = None, max_maps: int = 64) -> Tensor:
    """Activations (1, C, h, w) -> (C, 1, h, w) grayscale tiles; (1, D) vectors -> one tile."""
    if a.ndim == 2:
        img = vector_as_image(a[0].float().cpu())
        r = vector_as_image(ref[0].float().cpu()) if ref is not None else None
        return normalize_tiles(img, r)
    t = a[0, :max_maps].float().cpu().unsqueeze(1)
    r = ref[0, :max_maps].float().cpu().unsqueeze(1) if ref is not None else None
    return normalize_tiles(t, r)


def tile_grid_size(n: int, tile_h: int, tile_w: int, padding: int = 2) -> tuple[int, int]:
    """(height, width) in pixels of :func:`save_tiles`' grid of n tiles (make_grid layout)."""
    if n == 1:  # make_grid returns a lone tile as it is, unpadded
        return tile_h, tile_w
    rows, cols = grid_shape(n)
    return rows * (tile_h + padding) + padding, cols * (tile_w + padding) + padding
