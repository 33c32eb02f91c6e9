"""The anomaly head: settings, error maps and image scores, the latent kNN score, the
feature and learned maps, thresholds, synthetic defects, metrics, the ``AnomalyDetector``
estimator and scoring a dataset to files.

May import ``aedetect.core``, ``aedetect.data``, ``aedetect.util`` and ``aedetect.errors``;
never ``denoise``, ``inspect`` or ``cli``.
"""
