"""Choosing the scoring without labels: whether an autoencoder trains at all (plan), the
label-free selection (select) on synthetic anomalies (synthetic, defects) and its one-line
report (selectreport)."""
