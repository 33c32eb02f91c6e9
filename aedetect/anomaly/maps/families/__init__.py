"""The built-in map families, one object each (aedetect.anomaly.maps.family): the error maps
(mse, l1, ssim, mix), features, pretrained and learned; aedetect.anomaly.maps.registry registers them."""
