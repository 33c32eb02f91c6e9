"""One-class MNIST validation data from the *training* split alone (issue 12): the benches that
choose how aedetect selects its scoring measure on this, never on the test split.

For digit k and a seed: ``train`` (a sample of the training images of k), ``normals`` (other
training images of k) and ``anomalies`` (training images of the other nine digits), disjoint.
"""

from __future__ import annotations

import torch

from aedetect.core.config import DataConfig
from aedetect.data.imageset import ImageSet
from aedetect.data.sources import load_torchvision


def mnist_training_split(data_root: str | None) -> ImageSet:
    """Every MNIST training image, with its digit in ``classes``."""
    return load_torchvision("mnist", DataConfig(channels=1, size=(28, 28)), train=True, normal_class=0,
                            data_root=data_root, only_normal=False)


def validation_case(everything: ImageSet, k: int, seed: int, n_train: int,
                    n_val: int) -> tuple[ImageSet, ImageSet, ImageSet]:
    """(train, normals, anomalies) of digit ``k``: ``n_train`` and up to ``n_val`` images of k,
    and ``n_val`` images of the other digits, each drawn with the seed."""
    g = torch.Generator().manual_seed(seed)
    own = torch.nonzero(everything.classes == k).ravel()
    own = own[torch.randperm(len(own), generator=g)]
    others = torch.nonzero(everything.classes != k).ravel()
    others = others[torch.randperm(len(others), generator=g)][:n_val]
    return (everything.subset(own[:n_train].sort().values), everything.subset(own[n_train:n_train + n_val]),
            everything.subset(others))
