"""Scores against labels: metrics, per-defect-kind metrics (kinds), the labelled heat-map
panels (heatmap, gallery) and report.html (report, reportplots)."""
