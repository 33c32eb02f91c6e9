"""The denoise head: noise models, the ``Denoiser`` estimator, tiled inference and the
folder command.

May import ``aedetect.core``, ``aedetect.data``, ``aedetect.util`` and ``aedetect.errors``;
never ``anomaly``, ``inspect`` or ``cli``.
"""
