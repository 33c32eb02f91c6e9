"""The anomaly head, grouped by job: maps (error maps, image scores, the latent kNN score, the
feature, learned and pretrained maps), calibration (thresholds, the flag), selection (the
label-free choice of scoring, synthetic defects), evaluate (metrics, report.html) and jobs
(score, calibrate, merge, export); settings, the head and the ``AnomalyDetector`` estimator
stay here.

May import ``aedetect.core``, ``aedetect.data``, ``aedetect.util`` and ``aedetect.errors``;
never ``denoise``, ``inspect`` or ``cli``. Inside, rooms import downwards only (settings <-
maps, evaluate <- calibration, selection <- head <- detector <- jobs; tests/test_layout.py).
"""
