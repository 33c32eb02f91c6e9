"""Anomaly maps and image scores: what a kind of map is (family) and the kinds by name
(registry, families/), one pass of the model (run), the latent kNN vector (latent), the
feature map's and the learned map's mathematics (featuremap, learned) and the ImageNet
extractor of the pretrained map and vector (backbone)."""
