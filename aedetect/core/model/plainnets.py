"""Plain convolution stacks for denoising: DnCNN-style and FFDNet-style (``model.arch``).

Neither has an encoder/decoder or a code; both predict the noise and subtract it (residual
learning, Zhang et al. 2017), so a freshly initialised net starts as the identity.

* ``dncnn``: ``model.depth`` 3x3 convs of ``model.widths[0]`` channels at full resolution.
* ``ffdnet``: the same stack on a half-resolution picture of the image: pixel-unshuffle turns
  (C, H, W) into (4C, H/2, W/2) first and pixel-shuffle turns it back (Zhang, Zuo and Zhang
  2018). Each layer then costs a quarter of the FLOPs for the same receptive field in pixels,
  which is what a CPU needs.

``model.noise_map``: the input carries one more channel, the noise level (sigma / 255) at each
pixel, so one model serves every level and a user can say how strong the noise is (FFDNet's
idea); aedetect.denoise builds that channel. FFDNet's net sees the map at half resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aedetect.core.config import ModelConfig

PLAIN_ARCHS = ("dncnn", "ffdnet")


class PlainDenoiser(nn.Module):
    """conv+ReLU, (depth - 2) x conv+ReLU, conv; the output is ``image - predicted noise``."""

    def __init__(self, c: ModelConfig) -> None:
        super().__init__()
        self.channels = c.in_channels
        self.scale = 2 if c.arch == "ffdnet" else 1
        self.noise_map = c.noise_map
        width, k = c.widths[0], c.kernel_size
        cin = c.in_channels * self.scale ** 2 + (1 if c.noise_map else 0)
        cout = c.in_channels * self.scale ** 2
        layers: list[nn.Module] = [nn.Conv2d(cin, width, k, padding=k // 2), nn.ReLU(inplace=True)]
        for _ in range(c.depth - 2):
            layers += [nn.Conv2d(width, width, k, padding=k // 2), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, cout, k, padding=k // 2))
        self.body = nn.Sequential(*layers)
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        # The last layer starts small: the net starts as (nearly) the identity, the noisy input.
        last = self.body[-1]
        assert isinstance(last, nn.Conv2d)
        last.weight.data.mul_(0.01)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C [+1 noise map], H, W) -> (N, C, H, W) clean estimate."""
        img = x[:, :self.channels]
        h, w = x.shape[-2:]
        if self.scale == 1:
            return img - self.body(x)
        ph, pw = h % 2, w % 2
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        parts = [F.pixel_unshuffle(x[:, :self.channels], 2)]
        if self.noise_map:
            parts.append(x[:, self.channels:, ::2, ::2])
        inp = torch.cat(parts, 1) if len(parts) > 1 else parts[0]
        noise = F.pixel_shuffle(self.body(inp), 2)[..., :h, :w]
        return img - noise
