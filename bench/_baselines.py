"""The suite's baselines on raw pixels (bench/anomaly_suite.py), fitted on the same training
images as aedetect and scored on the same test images: scikit-learn's OneClassSVM, the mean
distance to the k nearest training images, PCA reconstruction error, and the dense ``mlp``
preset autoencoder through aedetect itself with the plain l2 scoring. Their settings are fixed
here (nu 0.1, gamma 'scale', k 5, 90 % of the variance) and never looked at on a test split.
Higher score = more anomalous, as everywhere in aedetect."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from aedetect.data.imageset import ImageSet


def _flat(images: ImageSet) -> np.ndarray:
    return images.images.flatten(1).numpy().astype(np.float32) / float(images.max_value)


def ocsvm(train: ImageSet, test: ImageSet, seed: int) -> dict[str, Any]:
    from sklearn.svm import OneClassSVM

    m = OneClassSVM(kernel="rbf", gamma="scale", nu=0.1).fit(_flat(train))
    return {"scores": -m.decision_function(_flat(test))}


def knn(train: ImageSet, test: ImageSet, seed: int, k: int = 5) -> dict[str, Any]:
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=min(k, len(train))).fit(_flat(train))
    return {"scores": nn.kneighbors(_flat(test))[0].mean(1)}


def pca(train: ImageSet, test: ImageSet, seed: int) -> dict[str, Any]:
    from sklearn.decomposition import PCA

    x = _flat(test)
    m = PCA(n_components=0.9, svd_solver="full", random_state=seed).fit(_flat(train))
    err = (x - m.inverse_transform(m.transform(x))) ** 2
    return {"scores": err.mean(1), "maps": err.reshape(len(test), *test.images.shape[2:])}


def mlp_ae(train: ImageSet, test: ImageSet, seed: int, epochs: int) -> dict[str, Any]:
    """The ``mlp`` preset (784-1000-100-1000-784 at 28x28), plain l2 scoring: mean squared error.
    Adam lr 1e-3; where its output collapses to the mean image twice (64x64 grass: 4,096 inputs),
    once more at lr 1e-4, the collapse message's own advice (a rule fixed for every row)."""
    from aedetect import AnomalyDetector
    from aedetect.errors import TrainingError

    size = list(test.images.shape[2:])
    for lr in (1e-3, 1e-4):
        det = AnomalyDetector(preset="mlp", epochs=epochs, size=tuple(size), seed=seed,
                              anomaly={"select": "none", "map": "mse", "smooth_sigma": 0, "score": "mean"},
                              overrides={"model": {"input_size": size},
                                         "train": {"batch_size": 64, "lr": lr, "patience": 100, "grid_every": 0}})
        try:
            det.fit(train)
            break
        except TrainingError:
            if lr == 1e-4:
                raise
    torch.manual_seed(seed)
    res = det.score(test, keep_images=False, batch_size=512)
    return {"scores": res.scores, "maps": res.maps, "lr": lr}


BASELINES = {"ocsvm": ocsvm, "knn": knn, "pca": pca, "mlp_ae": mlp_ae}
