"""Would a drift check of the scored folder see the place shift of bench/pretrained_place_val.py?
Reads the scores it saved (``--save-scores DIR``) and prints, per row and place: the share of
the defect set's normal crops flagged; where the set's 25th-percentile score sits among the
calibration scores (its percentile: about 0.25 without a shift); and the flag rate and recall
once the threshold is moved by that quantile's shift (re-anchored on the scored set itself).

    python bench/pretrained_place_drift.py DIR
"""

from __future__ import annotations

import glob
import os
import sys

import numpy as np

from aedetect.anomaly.threshold import threshold_at_fpr


def main(argv: list[str] | None = None) -> int:
    folder = (argv or sys.argv[1:])[0]
    for f in sorted(glob.glob(os.path.join(folder, "*.npz"))):
        d = np.load(f)
        cal, s, y = d["calib"], d["defects"], d["labels"]
        t = threshold_at_fpr(cal, 0.01)
        q = np.quantile(s, 0.25)
        moved = t + (q - np.quantile(cal, 0.25))
        print(f"{os.path.basename(f)[:-4]:<36} flagged {100 * (s[y == 0] > t).mean():5.1f} %  q25 at calibration "
              f"percentile {(cal < q).mean():.2f}  re-anchored: flagged {100 * (s[y == 0] > moved).mean():5.1f} %, "
              f"recall {(s[y == 1] > t).mean():.2f} -> {(s[y == 1] > moved).mean():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
