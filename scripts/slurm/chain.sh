#!/bin/bash
# Submit N chained jobs of scripts/slurm/dslm.sbatch: each starts when the previous
# one ends (finished, failed or hit its time limit) and resumes the same run folder.
#
#   scripts/slurm/chain.sh 10 --nodes=2 -- train --config configs/owt-small-mdlm.yaml train.grad_accum=1
#
# Arguments before `--` go to sbatch, the rest to dslm. A job whose run already reached
# train.steps finishes at once.
set -euo pipefail

N=${1:?usage: chain.sh N [SBATCH_ARGS...] -- train|finetune ARGS...}
shift
SBATCH_ARGS=()
while [[ $# -gt 0 && "$1" != "--" ]]; do SBATCH_ARGS+=("$1"); shift; done
[[ "${1:-}" == "--" ]] || { echo "chain.sh: missing -- before the dslm command" >&2; exit 2; }
shift

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
previous=""
for ((i = 1; i <= N; i++)); do
  dependency=()
  [[ -n "$previous" ]] && dependency=(--dependency="afterany:$previous")
  previous=$(sbatch --parsable "${SBATCH_ARGS[@]}" "${dependency[@]}" "$HERE/dslm.sbatch" "$@")
  echo "job $i/$N: $previous"
done
