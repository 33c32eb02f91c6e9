#!/usr/bin/env bash
# The one prepared run for a lent GPU (issue 29), in under 8 minutes: install what the machine
# lacks (from .gpu/, see prepare.sh), run the tests that take the CUDA path, train the two shipped
# denoisers from their recipes on the GPU, time them, and bring the model files back in $OUT.
#
#   bash bench/gpu/prepare.sh                      # here, once
#   device run, carry [".gpu"]:  bash bench/gpu/run.sh
#   DEVICE=cpu GRAY_S=40 RGB_S=40 SKIP_TESTS=1 SETS="--set denoise.crops_per_image=1" \
#       OUT=/tmp/gpu-try bash bench/gpu/run.sh     # the same script, tiny, on a CPU
#
# GRAY_S / RGB_S: seconds of training each (the epoch count follows from a probe of the speed,
# so the cosine schedule ends when the time does). Back in $OUT: gray.safetensors,
# rgb.safetensors (copy to aedetect/pretrained/ only if bench/denoise_valcheck.py says they beat
# the shipped ones on the held-out images), log.txt, speed.json.
set -uo pipefail
cd "$(dirname "$0")/../.."
DEVICE=${DEVICE:-cuda}; GRAY_S=${GRAY_S:-150}; RGB_S=${RGB_S:-180}; BATCH=${BATCH:-64}
OUT=${OUT:?set OUT to a folder for the results}; mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
if [ -d .gpu/whl ] && ! python3 -c "import albumentations" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch, aedetect; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
data=.gpu/data; [ -d "$data" ] || data=../shared/data
# The CUDA path: the tests that pick a device, on this one (they skip what needs no GPU).
[ -n "${SKIP_TESTS:-}" ] || python3 -m pytest -q -x -p no:cacheprovider tests/test_fail_early.py tests/test_denoise.py 2>&1 | tail -3
# shellcheck disable=SC2086
python3 bench/gpu/train.py --device "$DEVICE" --batch "$BATCH" --out "$OUT" ${SETS:-} \
    gray:recipes/pretrained-gray.toml:"$data/Train400":"$GRAY_S" rgb:recipes/pretrained-rgb.toml:"$data/BSDS400":"$RGB_S"
ls -la "$OUT"
