"""The ``aedetect`` command line: thin typer commands, each calling one library function.

Known errors (:class:`aedetect.errors.AedetectError`) become one red line and exit code 1,
never a traceback (the fastapi-cli pattern).
"""

from aedetect.cli.app import app, main

# Each module registers its commands on ``app`` when imported.
from aedetect.cli import fit as _fit  # noqa: E402,F401
from aedetect.cli import info as _info  # noqa: E402,F401
from aedetect.cli import demo as _demo  # noqa: E402,F401
from aedetect.cli import score as _score  # noqa: E402,F401
from aedetect.cli import calibrate as _calibrate  # noqa: E402,F401
from aedetect.cli import denoise as _denoise  # noqa: E402,F401
from aedetect.cli import inspect as _inspect  # noqa: E402,F401
from aedetect.cli import sweep as _sweep  # noqa: E402,F401
from aedetect.cli import merge as _merge  # noqa: E402,F401
from aedetect.cli import export as _export  # noqa: E402,F401

__all__ = ["app", "main"]
