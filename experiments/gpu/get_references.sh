#!/usr/bin/env bash
# Fills .ref/ (ignored by git, never committed) with the PyTorch reference code that
# experiments/gpu/gpu_check.py's torch part times: quark0/darts' cnn/ (commit f276dd3) and the
# files of D-X-Y/AutoDL-Projects (commit f46486e) that experiments/pytorch_reference.py reads.
# Needs network access (run it here, then carry .ref to the GPU machine with .whl), or local
# clones / mirrors of the two repositories as arguments (URLs or absolute paths):
#   bash experiments/gpu/get_references.sh [DARTS_GIT_URL_OR_PATH [AUTODL_GIT_URL_OR_PATH]]
set -euo pipefail
DARTS_SRC=${1:-https://github.com/quark0/darts}
AUTODL_SRC=${2:-https://github.com/D-X-Y/AutoDL-Projects}
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git clone -q "$DARTS_SRC" "$tmp/darts"
git -C "$tmp/darts" checkout -q f276dd3
git clone -q "$AUTODL_SRC" "$tmp/autodl"
git -C "$tmp/autodl" checkout -q f46486e
rm -rf .ref/darts .ref/AutoDL-Projects
mkdir -p .ref/darts .ref/AutoDL-Projects
cp -r "$tmp/darts/cnn" .ref/darts/
for f in xautodl/models/cell_operations.py xautodl/models/cell_searchs/search_cells.py \
         xautodl/models/cell_searchs/search_model_darts.py \
         xautodl/models/cell_searchs/genotypes.py exps/NAS-Bench-201-algos/DARTS-V2.py; do
  mkdir -p ".ref/AutoDL-Projects/$(dirname "$f")"
  cp "$tmp/autodl/$f" ".ref/AutoDL-Projects/$f"
done
du -sh .ref
