#!/usr/bin/env bash
# One GPU check: training (eager and compiled), memory and sampling benchmarks.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]            # on a GPU; OUT_DIR default benchmarks/results
#   bash benchmarks/gpu_check.sh --smoke [OUT_DIR]    # the same scripts at tiny sizes on the CPU
#   GPU_CHECK_PARTS="sample_eager profile" bash benchmarks/gpu_check.sh OUT   # some parts only
#   (parts: memory train_eager train_rows train_compiled sample_eager profile, and two not in
#   the default set: train_compiled_model (DSL compiled whole, the NaN study) and
#   sample_compiled)
#
# Needs python3 with torch (+ safetensors, numpy, pyyaml, tqdm); runs this checkout's
# code through PYTHONPATH=src (no install). Writes one JSON per part into OUT_DIR
# (train_eager.json, train_rows.json, train_compiled.json, memory.json, sample_eager.json,
# and train_compiled_model.json / sample_compiled.json when asked) and the combined log gpu_check.log (which also holds the
# sampler profile of profile_sample.py and, on a non-finite compiled loss, the NaN
# locator's lines). Each part has its own
# timeout, so one failure does not lose the rest; the worst case (every part
# timing out) is under 6 minutes. Each script writes its JSON after every row, so a
# part cut by its timeout still leaves the rows it finished.
set -u

SMOKE=0
if [ "${1:-}" = "--smoke" ]; then SMOKE=1; shift; fi
OUT=${1:-benchmarks/results}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG="$OUT/gpu_check.log"
PY=${PYTHON:-python3}
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
cd "$HERE"
: > "$LOG"

if [ "$SMOKE" = 1 ]; then
    # tiny sizes on the CPU; compiled parts use the aot_eager backend (dynamo + AOT autograd
    # tracing of the fused kernels, no Triton/C++ code generation)
    DEV="--device cpu"
    TRAIN="--preset tiny --vocab-size 130 --hidden-size 64 --n-blocks 1 --seq-len 32 --batch-size 2,3 --steps 1 --warmup 1 --peak-seconds 0.05"
    BACKEND="--backend aot_eager"
    MEM="--preset tiny --vocab-size 130 --hidden-size 64 --n-blocks 1 --seq-len 32 --bf16"
    SAMPLE="--preset tiny --vocab-size 130 --hidden-size 64 --n-blocks 1 --seq-len 16 --steps 4 --warmup-steps 2 --batch-size 2,3"
    TRAIN_C="$TRAIN"
    TRAIN_R="$TRAIN"
    TRAIN_CM="--preset tiny --vocab-size 130 --hidden-size 64 --n-blocks 1 --seq-len 32 --kind dsl --batch-size 2 --steps 1 --warmup 1 --peak-seconds 0.05"
    PROFILE="--preset tiny --vocab-size 130 --hidden-size 64 --n-blocks 1 --seq-len 16 --steps 4 --batch-size 2 --rows 6"
    T_MEM=120; T_EAGER=120; T_ROWS=120; T_COMPILED=240; T_COMPILED_M=240; T_SAMPLE=180
    T_SAMPLE_C=120; T_PROFILE=120
else
    DEV="--device cuda"
    TRAIN="--preset small --batch-size 16,32,64 --steps 8 --warmup 2 --peak-seconds 0.5"
    # the training path with the head's zero-weight rows skipped and the DSL converter's
    # y = 0 rows computed once (dslm.models.train_rows; the CPU default, opt-in on a GPU)
    TRAIN_R="--preset small --batch-size 64 --steps 8 --warmup 2 --peak-seconds 0.5"
    # compiled, block scope (as train.compile_scope): one block's graph serves every block;
    # batch 32, the three kinds
    TRAIN_C="--preset small --batch-size 32 --steps 8 --warmup 2 --peak-seconds 0.5"
    # compiled whole (the scope that gave a NaN DSL loss, 2026-11-27): DSL only, with the
    # per-step finiteness check and the NaN locator
    TRAIN_CM="--preset small --kind dsl --batch-size 32 --steps 3 --warmup 1 --peak-seconds 0.5"
    BACKEND=""
    MEM="--preset small --seq-len 1024 --batch-size 64"
    SAMPLE="--preset small --steps 64 --warmup-steps 16 --batch-size 8,32"
    PROFILE="--preset small --steps 8 --batch-size 8 --samplers mdlm,remdm-loop,dsl-continuous --rows 15"
    # compiling the whole small model's forward and backward took 127 s on an H200 host
    # and over 160 s on an H100 host (2026-11-27); the block scope compiles one block
    # (GPU_CHECK_T_COMPILED overrides the compiled part's limit)
    T_MEM=30; T_EAGER=50; T_ROWS=30; T_COMPILED=${GPU_CHECK_T_COMPILED:-130}
    T_COMPILED_M=${GPU_CHECK_T_COMPILED_MODEL:-300}; T_SAMPLE=75; T_SAMPLE_C=25; T_PROFILE=35
fi
SAMPLERS="mdlm,remdm-loop,dsl-mdlm,dsl-remdm-loop,dsl-continuous,hybrid"
# default parts on a GPU: worst case (every part timing out) 350 s; train_compiled_model
# and sample_compiled on request. The smoke mode runs every part.
DEFAULT_PARTS="memory train_eager train_rows train_compiled sample_eager profile"
[ "$SMOKE" = 1 ] && DEFAULT_PARTS="$DEFAULT_PARTS train_compiled_model sample_compiled"
PARTS=" ${GPU_CHECK_PARTS:-$DEFAULT_PARTS} "
want() { case "$PARTS" in *" $1 "*) return 0 ;; esac; return 1; }

part() {   # part NAME SECONDS COMMAND...
    local name=$1 secs=$2; shift 2
    echo "=== $name (timeout ${secs}s): $*" | tee -a "$LOG"
    local t0=$SECONDS
    timeout -k 5 "$secs" "$@" >> "$LOG" 2>&1
    local rc=$?
    echo "=== $name: exit $rc after $((SECONDS - t0))s" | tee -a "$LOG"
    tail -n 8 "$LOG" | grep -v '^===' | sed 's/^/    /'
}

{
    echo "gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) smoke=$SMOKE root=$ROOT"
    (cd "$ROOT" && git rev-parse HEAD 2>/dev/null) || true
    command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)"
} >> "$LOG" 2>&1
cat "$LOG"

# shellcheck disable=SC2086
want memory && part memory "$T_MEM" "$PY" bench_memory.py $DEV $MEM --out "$OUT/memory.json"
# shellcheck disable=SC2086
want train_eager && part train_eager "$T_EAGER" "$PY" bench_train.py $DEV $TRAIN --compile off --out "$OUT/train_eager.json"
# shellcheck disable=SC2086
want train_rows && part train_rows "$T_ROWS" env DSLM_TRAIN_ROWS=1 "$PY" bench_train.py $DEV $TRAIN_R --compile off --out "$OUT/train_rows.json"
# shellcheck disable=SC2086
want train_compiled && part train_compiled "$T_COMPILED" "$PY" bench_train.py $DEV $TRAIN_C --compile on --compile-scope blocks $BACKEND --out "$OUT/train_compiled.json"
# shellcheck disable=SC2086
want train_compiled_model && part train_compiled_model "$T_COMPILED_M" "$PY" bench_train.py $DEV $TRAIN_CM --compile on --compile-scope model $BACKEND --out "$OUT/train_compiled_model.json"
# shellcheck disable=SC2086
want sample_eager && part sample_eager "$T_SAMPLE" env DSLM_COMPILE=0 "$PY" bench_sample.py $DEV $SAMPLE --models random,peaked \
    --samplers "$SAMPLERS" --no-cache-rows --out "$OUT/sample_eager.json"
# shellcheck disable=SC2086
want profile && part profile "$T_PROFILE" env DSLM_COMPILE=0 "$PY" profile_sample.py $DEV $PROFILE
# shellcheck disable=SC2086
want sample_compiled && part sample_compiled "$T_SAMPLE_C" env DSLM_COMPILE=1 "$PY" bench_sample.py $DEV $SAMPLE --models peaked \
    --samplers mdlm --no-cache-rows --out "$OUT/sample_compiled.json"

echo "gpu_check done in ${SECONDS}s; results in $OUT" | tee -a "$LOG"
ls -l "$OUT" | tee -a "$LOG"
