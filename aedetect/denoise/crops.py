"""Training crops for the denoise head, and a pool that draws fresh ones every epoch.

``denoise.crops_per_image`` random ``denoise.patch_size`` crops (each randomly flipped and
turned by a multiple of 90 degrees) are cut from every clean image into the integer cache the
Trainer slices batches from. With ``denoise.fresh_crops`` (the default) the pool draws a new set
at the start of every epoch, from a seed that depends on the epoch alone, so a long run sees
new patches of all its images all the time and a resumed run draws what the cut one would have.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from aedetect.data.imageset import ImageSet, to_chw
from aedetect.denoise.noise import NoiseRecipe


def random_crops(images: list[Tensor], patch: int, per_image: int, seed: int) -> tuple[Tensor, list[int]]:
    """``per_image`` random (patch x patch) crops of each (C, H, W) image, randomly flipped and
    turned by multiples of 90 degrees; images smaller than the patch are reflect-padded.

    An image with fewer crop positions than ``per_image`` (e.g. 28x28 MNIST digits) gives one
    crop per position, so a large set of small images does not blow up the cache. Returns the
    crops and how many came from each image.
    """
    g = torch.Generator().manual_seed(seed)
    out, counts = [], []
    for img in images:
        c, h, w = img.shape
        if h < patch or w < patch:
            ph, pw = max(0, patch - h), max(0, patch - w)
            mode = "reflect" if ph < h and pw < w else "replicate"
            img = torch.nn.functional.pad(img[None].float(), (0, pw, 0, ph), mode=mode)[0].to(img.dtype)
            h, w = img.shape[-2:]
        n = min(per_image, (h - patch + 1) * (w - patch + 1))
        counts.append(n)
        tops = torch.randint(0, h - patch + 1, (n,), generator=g)
        lefts = torch.randint(0, w - patch + 1, (n,), generator=g)
        turns = torch.randint(0, 8, (n,), generator=g)
        for t, l, r in zip(tops.tolist(), lefts.tolist(), turns.tolist()):
            crop = img[:, t:t + patch, l:l + patch]
            if r >= 4:
                crop = crop.flip(-1)
            out.append(torch.rot90(crop, r % 4, dims=(-2, -1)))
    return torch.stack(out).contiguous(), counts


def to_tensors(arrays: list[np.ndarray], channels: int) -> tuple[list[Tensor], float]:
    """Decoded (H, W, C) arrays at native size -> (C, H, W) integer tensors on one scale."""
    sixteen = any(a.dtype == np.uint16 for a in arrays)
    return [to_chw(a, channels, sixteen) for a in arrays], (65535.0 if sixteen else 255.0)


def crop_set(images: list[Tensor], max_value: float, recipe: NoiseRecipe, seed: int,
             paths: list[str] | None = None, skipped: list[tuple[str, str]] | None = None) -> ImageSet:
    """The training cache: random crops of every image (see :func:`random_crops`)."""
    patch = min(recipe.patch_size, max(min(im.shape[-2:]) for im in images))
    crops, counts = random_crops(images, patch, recipe.crops_per_image, seed)
    names = [f"{p}#crop{j}" for p, n in zip(paths or [str(i) for i in range(len(images))], counts)
             for j in range(n)]
    return ImageSet(images=crops.to(torch.int32 if max_value > 255 else torch.uint8), max_value=max_value,
                    paths=names, skipped=list(skipped or []))


# Whole images are held out for validation only when at least this many are.
MIN_HELD_OUT = 2


@dataclass
class CropPool(ImageSet):
    """An ImageSet of crops that knows the whole images they were cut from.

    ``split`` holds out whole images (not crops of images that training also sees), and
    ``refresh(epoch)`` re-draws the crops. With fewer than :data:`MIN_HELD_OUT` images to hold
    out there is too little to hold out: one image is a poor judge of every epoch (five
    photographs, one of them a page of text, picked epoch 1 of 6), so the crops are split as in
    a plain ImageSet and the calibration says so.
    """

    sources: list[Tensor] = field(default_factory=list)
    source_paths: list[str] = field(default_factory=list)
    recipe: NoiseRecipe | None = None
    seed: int = 0

    @classmethod
    def draw(cls, sources: list[Tensor], max_value: float, recipe: NoiseRecipe, seed: int,
             paths: list[str], skipped: list[tuple[str, str]] | None = None) -> "CropPool":
        crops = crop_set(sources, max_value, recipe, seed, paths, skipped)
        return cls(images=crops.images, max_value=max_value, paths=crops.paths, skipped=crops.skipped,
                   sources=sources, source_paths=paths, recipe=recipe, seed=seed)

    def split(self, val_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
        n = len(self.sources)
        n_val = min(n - 1, round(n * val_fraction))
        if n_val < MIN_HELD_OUT or self.recipe is None:
            train, val = super().split(val_fraction, seed)
            # Training keeps drawing fresh crops of every image (the validation crops are of the
            # same images here anyway).
            return CropPool(images=train.images, max_value=self.max_value, paths=train.paths,
                            skipped=self.skipped, sources=self.sources, source_paths=self.source_paths,
                            recipe=self.recipe, seed=self.seed), val
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()

        def part(idx: list[int], s: int) -> "CropPool":
            assert self.recipe is not None
            return CropPool.draw([self.sources[i] for i in idx], self.max_value, self.recipe, s,
                                 [self.source_paths[i] for i in idx], self.skipped)

        return part(perm[n_val:], self.seed), part(perm[:n_val], self.seed + 999)

    def refresh(self, epoch: int) -> None:
        """New crops for ``epoch`` (the Trainer calls this before each epoch); the first epoch
        keeps the crops drawn at load time, and the count per image does not change."""
        if self.recipe is None or not self.recipe.fresh_crops or epoch <= 1:
            return
        seed = self.seed + 7919 * epoch
        new = crop_set(self.sources, self.max_value, self.recipe, seed, self.source_paths).images
        if len(new) != len(self):  # a crop-level split trained on part of the crops: keep the count
            keep = torch.randperm(len(new), generator=torch.Generator().manual_seed(seed))[:len(self)]
            new = new[keep.sort().values]
        self.images = new
