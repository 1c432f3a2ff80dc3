#!/usr/bin/env bash
# venv.sh creates (idempotently) the project virtualenv at $ROOT/.venv with MLflow,
# LightGBM and the cross-check libraries pinned in scripts/requirements.txt.
# Downloads are cached under .cache/pip. Re-runs are cheap: a stamp file records the
# hash of requirements.txt that was last installed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MLOPS_VENV:-$ROOT/.venv}
REQ=$ROOT/scripts/requirements.txt
STAMP=$VENV/.requirements.sha256
PY=${PYTHON:-python3}

want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [[ -x $VENV/bin/python && -f $STAMP && $(cat "$STAMP") == "$want" ]]; then
  exit 0
fi
[[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
export PIP_CACHE_DIR=$ROOT/.cache/pip
"$VENV/bin/python" -m pip install --quiet --upgrade pip wheel >/dev/null
"$VENV/bin/python" -m pip install --quiet -r "$REQ"
echo "$want" > "$STAMP"
echo "venv ready: $VENV"
