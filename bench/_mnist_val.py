"""One-class MNIST validation data from the *training* split alone (issue 12): the benches that
choose how aedetect selects its scoring measure on this, never on the test split.

For digit k and a seed: ``train`` (a sample of the training images of k), ``normals`` (other
training images of k) and ``anomalies`` (training images of the other nine digits), disjoint.
"""

from __future__ import annotations

import argparse
import os

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


def validation_parser(doc: str | None, *, train: int, val: int, epochs: int, digits: list[int],
                      seeds: bool = False, val_help: str | None = None) -> argparse.ArgumentParser:
    """The arguments every MNIST validation bench takes: ``--digits``, ``--seed`` (or
    ``--seeds``), ``--train``, ``--val``, ``--epochs``, ``--json``, ``--data-root``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--digits", nargs="+", type=int, default=digits)
    if seeds:
        ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    else:
        ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=train)
    ap.add_argument("--val", type=int, default=val, help=val_help)
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--json", default=None)
    ap.add_argument("--data-root", default=os.environ.get("AEDETECT_DATA_ROOT"))
    return ap


def training_split_for(args: argparse.Namespace) -> ImageSet:
    """:func:`mnist_training_split` of ``--data-root``, with torch on ``OMP_NUM_THREADS`` threads
    (1 unless set: the benches run one process per core)."""
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    return mnist_training_split(args.data_root)
