"""Where this process stands in a launch: torchrun sets ``RANK`` for every process it starts.

Read from the environment, not from torch.distributed, so the CLI's logging and progress bars
can ask before the process group exists (and without importing torch).
"""

from __future__ import annotations

import os


def is_secondary_rank() -> bool:
    """A launched process other than rank 0: it trains but does not narrate (rank 0 does)."""
    return os.environ.get("RANK", "0") not in ("", "0")
