#!/usr/bin/env bash
# The one command of the GPU check (issue #32), on a bare GPU machine without network:
#   bash experiments/gpu/run.sh --out $OUT/gpu [more experiments/gpu/gpu_check.py options]
# Installs the wheels of .whl/ (the packages the machine lacks; the pip download command is in
# gpu_check.py's docstring) into a target directory, puts it on PYTHONPATH, and runs the check
# with the machine's own python3 and jax, its log also written to <--out>/log.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
SITE=${JAXNAS_SITE:-/tmp/jaxnas_site}
OUT_DIR=""
prev=""
for arg in "$@"; do
  case "$arg" in
    --out=*) OUT_DIR="${arg#--out=}" ;;
  esac
  if [ "$prev" = "--out" ]; then OUT_DIR="$arg"; fi
  prev="$arg"
done
if [ -z "$OUT_DIR" ]; then
  echo "run.sh: give --out DIR (results.json and log.txt go there)" >&2
  exit 2
fi
mkdir -p "$OUT_DIR"
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --find-links .whl --target "$SITE" .whl/*.whl || {
      echo "run.sh: installing the wheels of .whl/ into $SITE failed" >&2; exit 1; }
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "run.sh: no wheels in .whl/ (gpu_check.py's docstring says how to download them);" \
       "using the packages installed here" >&2
fi
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
"$PY" experiments/gpu/gpu_check.py "$@" 2>&1 | tee "$OUT_DIR/log.txt"
exit "${PIPESTATUS[0]}"
