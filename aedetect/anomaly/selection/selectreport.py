"""How the scoring settings of a model were chosen, in words (no PyTorch needed, so ``aedetect
info`` can say it from the file's header): the line for the terminal, and the record for
``score``'s metrics.json."""

from __future__ import annotations

from typing import Any


def selection_line(calibration: dict[str, Any]) -> str | None:
    """One line naming the label-free choice and what it was chosen over; why it was skipped
    (too few held-out normal images); or None when the settings were given (``anomaly.select
    = none``, a pinned recipe) or the file predates it."""
    rec = calibration.get("selection")
    if not rec:
        return calibration.get("selection_skipped")
    given = rec.get("given_auroc")
    vs = f"given settings {rec.get('given')}: {given:.4f}" if isinstance(given, (int, float)) else "given settings not a candidate"
    skipped = f", {rec['candidates_skipped']} skipped at the {rec.get('budget_s'):g} s budget" \
        if rec.get("candidates_skipped") else ""
    pixel = rec.get("chosen_pixel_auroc")
    what = (f"validation AUROC {rec['chosen_auroc']:.4f}" if pixel is None else
            f"validation objective {rec['chosen_auroc']:.4f}: image AUROC {rec['chosen_image_auroc']:.4f}, "
            f"pixel AUROC {pixel:.4f}")
    topped = f" ({rec['normal_images_from_early_stopping']} of the early-stopping split)" \
        if rec.get("normal_images_from_early_stopping") else ""
    return (f"scoring chosen without labels: {rec['chosen']} ({what} on "
            f"{rec['normal_images']} held-out normal images{topped} vs synthetic anomalies of {len(rec['families'])} "
            f"families ({', '.join(rec['families'])}); {vs}; {rec['candidates_scored']} candidates in "
            f"{rec['seconds']:g} s{skipped})")


# The scoring settings metrics.json names, so a result says which scoring produced it.
SHOWN_SETTINGS = ("map", "smooth_sigma", "score", "topk_percent", "latent", "latent_source", "latent_metric",
                  "latent_bank", "latent_weight", "recon_weight")


def model_metrics(calibration: dict[str, Any]) -> dict[str, Any]:
    """What metrics.json says about the scoring: the settings used and, when they were chosen
    without labels, the whole selection record (candidates with their validation AUROC; it
    holds no banks, 220 candidates are about 15 kB). The same for one run and merged shards."""
    out: dict[str, Any] = {"scoring_settings": {k: calibration.get("settings", {}).get(k) for k in SHOWN_SETTINGS}}
    if calibration.get("selection"):
        out["selection"] = calibration["selection"]
    elif calibration.get("selection_skipped"):
        out["selection_skipped"] = calibration["selection_skipped"]
    return out
