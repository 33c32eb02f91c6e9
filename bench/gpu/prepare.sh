#!/usr/bin/env bash
# Run here, once, before a lent GPU is used: fills .gpu/ (ignored by git; about 45 MB) with what
# the GPU machine lacks and cannot fetch (it reaches no network): the wheels of the runtime
# dependencies its image does not hold (albumentations and its needs; torch, typer, rich,
# scikit-learn, scikit-image and safetensors are there), and the two training sets.
#   bash bench/gpu/prepare.sh [DATA_ROOT=../shared/data]
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${1:-../shared/data}
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/whl .gpu/data
# The versions this checkout's environment resolved (pip show), for CPython 3.12 there.
pkgs="albumentations albucore pydantic pydantic_core annotated-types typing-inspection simsimd stringzilla"
specs=""
for p in $pkgs; do
    v=$(python -m pip show "$p" 2>/dev/null | awk '/^Version:/{print $2}')
    [ -n "$v" ] || { echo "prepare: $p is not installed here; pip install -e . first" >&2; exit 1; }
    specs="$specs $p==$v"
done
plat=""
for n in 2_28 2_27 2_24 2_17 2_5; do plat="$plat --platform manylinux_${n}_x86_64"; done
# shellcheck disable=SC2086
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    $plat --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .gpu/whl $specs
cp -r "$data/Train400" "$data/BSDS400" .gpu/data/
du -sh .gpu
