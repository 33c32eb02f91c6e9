"""Anomaly maps and image scores: one pass of the model (run), the latent kNN vector
(latent), the feature map (featuremap), the ImageNet extractor of the pretrained map and
vector (backbone) and the learned map (learned)."""
