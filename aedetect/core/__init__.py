"""The core every head shares: typed config and presets, the CAE, the one training loop,
``fit``, the model file, losses, latent codes, plots and the task-head registry.

May import ``aedetect.data``, ``aedetect.util`` and ``aedetect.errors``; never a head
(``anomaly``, ``denoise``), ``inspect`` or ``cli``: heads are found through the registry
in :mod:`aedetect.core.heads`.
"""
