#!/usr/bin/env bash
# The MNIST bottleneck sweep of docs/benchmarks/sweep.md, one part per argument so that each
# part stays under ten minutes on a shared 2-core CPU:
#   bash bench/sweep_mnist.sh mlp|cifar|conv|fc|cae16|fc222k|single OUT_ROOT
# Data: $AEDETECT_DATA_ROOT must hold MNIST/raw (torchvision layout). Bounded on purpose:
# 20,000 training images (18,000 train / 2,000 validation), EPOCHS epochs (default 5),
# the full 10,000-image MNIST test split for test MSE.
set -euo pipefail
part=${1:?part: mlp, cifar, conv, fc, cae16, fc222k or single}
root=${2:-bench-out}
epochs=${EPOCHS:-5}
common=(--epochs "$epochs" --max-images 20000 --set train.patience=100)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$root"
case "$part" in
  # Stacked fully-connected 784-1000-L-1000-784, L = 784 ... 100.
  mlp) aedetect sweep mnist --preset mlp --latent 784,500,300,200,100 "${common[@]}" --out "$root/mlp" ;;
  # The CIFAR CAE layout (stride-2 convs 32/64, dense latent) on 28x28 gray MNIST.
  cifar) aedetect sweep mnist --preset cifar-linear --latent 200,1000 --set data.channels=1 \
           --set data.size=[28,28] "${common[@]}" --out "$root/cifar" ;;
  # Convolutional widths, three max-pool levels, mirrored nearest-upsampling decoder.
  conv) aedetect sweep mnist --preset small --vary 'model.widths=[[8,4,4],[16,8,8],[32,16,16]]' \
          "${common[@]}" --out "$root/conv" ;;
  # 16/8/8 CAE (conv-transpose upsampling) against a fully-connected 784-128-64-32 one.
  fc) bash "$0" cae16 "$root"; bash "$0" fc222k "$root" ;;
  cae16) aedetect fit mnist --preset small --set 'model.widths=[16,8,8]' --set model.up=transpose \
           "${common[@]}" --out "$root/cae-16-8-8-e$epochs" ;;
  fc222k) aedetect fit mnist --preset mlp --set 'model.mlp_hidden=[128,64,32]' "${common[@]}" \
            --out "$root/fc-128-64-32-e$epochs" ;;
  # Single-layer CAE (32 5x5 filters, tanh, [-1, 1]) without and with encoder weight decay 1e-5.
  single) aedetect fit mnist --preset single-layer --weight-decay 0 "${common[@]}" --out "$root/single-nowd-e$epochs"
          aedetect fit mnist --preset single-layer "${common[@]}" --out "$root/single-wd-e$epochs" ;;
  *) echo "unknown part $part" >&2; exit 2 ;;
esac
