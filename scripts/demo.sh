#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job on the embedded default: `dslm demo`.
# Extra arguments go to `dslm demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec dslm demo "$@"
