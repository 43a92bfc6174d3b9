#!/usr/bin/env bash
# On the GPU machine: unpacks the kit made by make-kit.sh, runs the `gpu` tests, short training
# runs on real data (when the kit has it), and the benchmarks against PyTorch on the same GPU, and
# writes everything under OUT_DIR:
#   tests.log, train.log, textscale.jsonl, pytorch.jsonl, peak.json, summary.md (summarize.py);
#   bilstm-metrics.jsonl and bilstm-evaluate.jsonl (the BiLSTM's training run, below).
# CUDA, cuDNN, cuBLAS and NCCL come from this machine: the nvidia-* Python wheels that PyTorch
# uses, else /usr/local/cuda.
#
# usage: bench/gpu/run-kit.sh KIT_ARCHIVE OUT_DIR [full | quick | profile | accuracy]
#   quick: tests and one benchmark per model only (for a short lease; the BiLSTM: two);
#   full also runs torch.compile (TF32, batch 128; COMPILE=0 skips it, about two minutes);
#   full and quick also time Crepe-small with its first block fused (the default) and unfused
#   (--onehot-fusion off) back to back: ab.jsonl; and both models in --precision bf16 with
#   the convolutions in bf16 (the default) and in TF32 (--bf16-conv off): ab_bf16.jsonl;
#   profile: tests, the training check, then per-layer times (profile.log) of each model at batch
#   128 in fp32 and tf32, and PyTorch eager in tf32 beside them;
#   accuracy: only bench/accuracy.sh on the GPU, textscale and PyTorch side by side: AG News
#   (10k -> 7.6k) VDCNN-9 (SGD 0.01) and Crepe-small (Adam 0.001), seeds SEEDS (1 2 3), EPOCHS
#   (30) epochs at batch BATCH (128), the rate halved every STEP_EPOCHS (5) epochs, paired (both
#   implementations of a seed from the same weights and row order; PAIRED=0 for independent
#   seeds; paired runs need h5py in the GPU machine's Python), the test split evaluated every
#   epoch; IMDB (25k -> 25k) one seed, IMDB_EPOCHS (10); all with a 5% validation split (VALID=0:
#   none, AG News then trains on all 10k rows as results/accuracy.md's CPU runs do), each call
#   limited to ACCURACY_TIMEOUT (600) seconds. MODELS ("vdcnn-9 crepe-small") and DATASETS
#   ("ag_news imdb") choose what runs, PARALLEL (1) how many runs share the GPU at a time;
#   ACCURACY_DEVICE=cpu makes a dry run of this mode on a machine without a GPU.
#   Tables and per-run metrics go to OUT_DIR/accuracy/.
# The BiLSTM (a word model): test_cuda_rnn with the other tests; in every mode unless BILSTM=0,
# jobs/main.sh's training run on the kit's AG News words on the GPU (3 epochs, Adam 0.002, batch
# 128, rows bucketed by length), its best checkpoint evaluated on the GPU and on the CPU; in full
# and quick, `textscale bench --model bilstm` (300 words, vocabulary 50,000, TF32) at batch 32 and
# 128 beside peer_gpu.py's PyTorch BiLSTM (reported "peer not available" when the kit has no
# bench/peer_word_models.py); in full and profile, its per-layer times at batch 128. About 2
# minutes in all; each of its programs is stopped after BILSTM_TIMEOUT seconds (150).
set -uo pipefail
archive=$1
out=$2
mode=${3:-full}
mkdir -p "$out"
kit=$(mktemp -d)
tar -C "$kit" -xJf "$archive"
python=${PYTHON:-python3}
wheel_libs=$("$python" - <<'PY' 2>/dev/null
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except Exception:
    roots = []
print(":".join(sorted({d for r in roots for d in glob.glob(os.path.join(r, "*", "lib")) if os.path.isdir(d)})))
PY
)
# Only textscale's programs see the kit's libraries (Python keeps its own).
libs="$kit/lib${wheel_libs:+:$wheel_libs}:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Each program is stopped after STEP_TIMEOUT seconds (default 300): a hang costs one step, not the
# lease.
run() { LD_LIBRARY_PATH=$libs timeout "${STEP_TIMEOUT:-300}" "$@"; }
textscale=$kit/bin/textscale
{
  echo "kit revision $(cat "$kit/REVISION")"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  run "$textscale" --version
  LD_LIBRARY_PATH=$libs ldd "$textscale" | grep -E "cudnn|cublas|nccl|cudart" || true
} | tee "$out/environment.txt"

status=0
# Every failure is recorded and the script goes on, so one broken piece does not hide the rest.
echo "== gpu tests" | tee "$out/tests.log"
# test_nccl runs as one process: without a launcher the NCCL id travels through a local
# communicator, no MPI is initialised.
# Each test program is stopped after TEST_TIMEOUT seconds (default 120; each took under 20 s
# on an H200), so a hung kernel costs two minutes of a short lease, not STEP_TIMEOUT's five.
for name in test_cuda_backend test_cuda_rnn test_cuda_training test_nccl; do
  t=$kit/tests/$name
  if [[ ! -x $t ]]; then
    echo "$name: FAILED (not in the kit)" | tee -a "$out/tests.log"
    status=1
    continue
  fi
  STEP_TIMEOUT=${TEST_TIMEOUT:-120} run "$t" --log_level=test_suite --report_level=short >>"$out/tests.log" 2>&1
  rc=$?
  case $rc in  # (not in a pipeline: `status` must change in this shell)
    0) result=passed ;;
    77) result="SKIPPED (no GPU visible)"; status=1 ;;
    124) result="FAILED (stopped after ${TEST_TIMEOUT:-120} s: TEST_TIMEOUT)"; status=1 ;;
    *) result="FAILED (exit $rc)"; status=1 ;;
  esac
  echo "$(basename "$t"): $result" | tee -a "$out/tests.log"
done

if [[ -f $kit/data/train.h5 ]]; then
  echo "== training on AG News rows (GPU)" | tee "$out/train.log"
  run "$textscale" train --device cuda --model crepe-small --train "$kit/data/train.h5" --test "$kit/data/test.h5" \
    --epochs 5 --batch-size 128 --lr 0.01 --log-every 100 --run-dir "$kit/run" >>"$out/train.log" 2>&1 || status=1
  tail -n 3 "$out/train.log"
  # One canonical checkpoint layout: the GPU's checkpoint evaluates on the CPU to the same accuracy
  # (within the rounding of the logits: a handful of rows at most).
  for device in cuda cpu; do
    run "$textscale" evaluate --device "$device" --checkpoint "$kit/run/checkpoint.h5" --data "$kit/data/test.h5" \
      --json "$kit/evaluate-$device.json" >>"$out/train.log" 2>&1 || status=1
  done
  "$python" - "$kit" <<'PY' | tee -a "$out/train.log" || status=1
import json, sys
gpu, cpu = (json.load(open(f"{sys.argv[1]}/evaluate-{d}.json")) for d in ("cuda", "cpu"))
print(f"checkpoint written on the GPU: accuracy {gpu['accuracy']:.4f} on the GPU, {cpu['accuracy']:.4f} on the CPU")
sys.exit(0 if abs(gpu["accuracy"] - cpu["accuracy"]) <= 0.002 else 1)
PY
  # Gradient accumulation on the GPU: 4 micro-batches of 32 rows take the steps of one batch of
  # 128 (the same samples, dropout masks and summed gradient, to rounding).
  for accumulate in 1 4; do
    run "$textscale" train --device cuda --model crepe-small --train "$kit/data/train.h5" --batch-size 128 \
      --max-steps 20 --log-every 10 --progress off --accumulate "$accumulate" --run-dir "$kit/run-accumulate-$accumulate" \
      >>"$out/train.log" 2>&1 || status=1
  done
  "$python" - "$kit" <<'PY' | tee -a "$out/train.log" || status=1
import json, sys
losses = [[r["loss"] for r in map(json.loads, open(f"{sys.argv[1]}/run-accumulate-{a}/metrics.jsonl")) if r["type"] == "interval"]
          for a in (1, 4)]
print(f"--accumulate 4 against one batch of 128, training losses: {losses[1]} against {losses[0]}")
sys.exit(0 if losses[0] and len(losses[0]) == len(losses[1]) and
         all(abs(a - b) <= 1e-3 * abs(a) for a, b in zip(*losses)) else 1)
PY
fi

# The BiLSTM's programs: each stopped after BILSTM_TIMEOUT seconds (150), so that a hang costs
# less than STEP_TIMEOUT's five minutes.
bilstm() { STEP_TIMEOUT=${BILSTM_TIMEOUT:-150} run "$@"; }
# The main job's word model (jobs/main.sh: the same data, preprocessing and options; there on 2
# CPU ranks, 0.88 on the test split after 3 epochs) on one GPU. Then its best validation
# checkpoint on the test split on the GPU and on the CPU: one checkpoint layout for cuDNN's and
# oneDNN's LSTM, so the two accuracies agree but for rows whose logits round differently.
rm -f "$out/bilstm-metrics.jsonl" "$out/bilstm-evaluate.jsonl"
if [[ ${BILSTM:-1} == 1 ]]; then
  if [[ -f $kit/words/train.h5 ]]; then
    echo "== training bilstm on AG News words (GPU; jobs/main.sh's options)" | tee -a "$out/train.log"
    bilstm "$textscale" train --device cuda --model bilstm --train "$kit/words/train.h5" \
      --valid "$kit/words/train.valid.h5" --test "$kit/words/test.h5" --epochs 3 --optimizer adam --lr 0.002 \
      --bucket-by-length true --test-each-epoch false --progress off --run-dir "$kit/run-bilstm" \
      >>"$out/train.log" 2>&1 || status=1
    cp "$kit/run-bilstm/metrics.jsonl" "$out/bilstm-metrics.jsonl" 2>/dev/null || status=1
    for device in cuda cpu; do
      bilstm "$textscale" evaluate --device "$device" --checkpoint "$kit/run-bilstm/best.h5" \
        --data "$kit/words/test.h5" --json "$kit/bilstm-evaluate-$device.json" >>"$out/train.log" 2>&1 || status=1
    done
    "$python" - "$kit" "$out/bilstm-evaluate.jsonl" <<'PY' | tee -a "$out/train.log" || status=1
import json, os, sys
rows = {}
with open(sys.argv[2], "w") as out:
    for device in ("cuda", "cpu"):
        path = f"{sys.argv[1]}/bilstm-evaluate-{device}.json"
        if os.path.exists(path):
            rows[device] = {"device": device, **json.load(open(path))}
            out.write(json.dumps(rows[device]) + "\n")
if len(rows) < 2:
    missing = " and ".join(d for d in ("cuda", "cpu") if d not in rows)
    sys.exit(f"bilstm: the best checkpoint was not evaluated on {missing} (train.log says why)")
gpu, cpu = rows["cuda"]["accuracy"], rows["cpu"]["accuracy"]
print(f"bilstm checkpoint written on the GPU: accuracy {gpu:.4f} on the GPU, {cpu:.4f} on the CPU")
sys.exit(0 if abs(gpu - cpu) <= 0.002 else 1)
PY
    # textscale predict on the GPU: the raw test CSV, encoded from the checkpoint, gives evaluate's
    # accuracy (other batch boundaries: the same but for rows whose logits round differently).
    if [[ -f $kit/words/test.csv.gz ]]; then
      bilstm "$textscale" predict --device cuda --checkpoint "$kit/run-bilstm/best.h5" \
        --input "$kit/words/test.csv.gz" --input-format zhang --output "$kit/bilstm-predict.csv" --overwrite \
        --summary-json "$kit/bilstm-predict-cuda.json" >>"$out/train.log" 2>&1 || status=1
      "$python" - "$kit" <<'PY' | tee -a "$out/train.log" || status=1
import json, sys
kit = sys.argv[1]
predicted = json.load(open(f"{kit}/bilstm-predict-cuda.json"))["metrics"]["accuracy"]
evaluated = json.load(open(f"{kit}/bilstm-evaluate-cuda.json"))["accuracy"]
print(f"bilstm predict on the raw CSV (GPU): accuracy {predicted:.4f}, evaluate {evaluated:.4f}")
sys.exit(0 if abs(predicted - evaluated) <= 0.002 else 1)
PY
    fi
  else
    echo "== no AG News words in the kit: the bilstm training check is skipped" | tee -a "$out/train.log"
  fi
fi
# bilstm_bench BATCH: textscale bench --model bilstm (synthetic full-length rows) to textscale.jsonl
# and peer_gpu.py's PyTorch BiLSTM to pytorch.jsonl (a line saying "available": false without it).
bilstm_bench() {
  # shellcheck disable=SC2086
  bilstm "$textscale" bench --device cuda --model bilstm --length 300 --vocab 50000 --batch-size "$1" \
    --precision tf32 $timing | sed 's/^{/{"precision":"tf32",/' >>"$out/textscale.jsonl" || status=1
  # shellcheck disable=SC2086
  timeout "${BILSTM_TIMEOUT:-150}" "$python" "$kit/bench/gpu/peer_gpu.py" \
    --model bilstm --length 300 --vocab 50000 --batch-size "$1" --precision tf32 $timing \
    >>"$out/pytorch.jsonl" || status=1
}

if [[ $mode == accuracy ]]; then
  # textscale through a wrapper that gives it the kit's libraries (Python keeps its own).
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%q exec %q "$@"\n' "$libs" "$textscale" >"$kit/textscale-run"
  chmod +x "$kit/textscale-run"
  # Prepared data: acc/ holds it with the 5% validation split, acc-full/ without one.
  acc=$kit/acc valid=(--valid "${VALID:-0.05}")
  [[ ${VALID:-0.05} == 0 ]] && acc=$kit/acc-full valid=()
  accuracy() {  # accuracy DATASET MODEL SEEDS EPOCHS
    local optimiser
    case $2 in
      crepe-*) optimiser=(--optimizer adam --lr 0.001) ;;
      *) optimiser=(--optimizer sgd --lr 0.01) ;;
    esac
    echo "== $1 $2 (${optimiser[*]}), seeds $3, $4 epochs" | tee -a "$out/accuracy.log"
    local paired=()  # pairing writes and reads textscale checkpoints from Python: it needs h5py
    if [[ ${PAIRED:-1} == 1 ]]; then
      if "$python" -c "import h5py" 2>/dev/null; then
        paired=(--paired)
      else
        echo "no h5py in $python: independent seeds instead of paired runs" | tee -a "$out/accuracy.log"
      fi
    fi
    TEXTSCALE=$kit/textscale-run PYTHON=$python timeout "${ACCURACY_TIMEOUT:-600}" bash "$kit/bench/accuracy.sh" \
      --dataset "$1" --models "$2" "${optimiser[@]}" --seeds "$3" --epochs "$4" "${valid[@]}" \
      --batch "${BATCH:-128}" --step-epochs "${STEP_EPOCHS:-5}" --test-each-epoch "${paired[@]}" \
      --parallel "${PARALLEL:-1}" --threads "$(nproc)" --device "${ACCURACY_DEVICE:-cuda}" --work "$acc" \
      >>"$out/accuracy.log" 2>&1 || status=1
  }
  for dataset in ${DATASETS:-ag_news imdb}; do
    if [[ ! -f $acc/$dataset/train.h5 ]]; then
      echo "no prepared $dataset in the kit: skipped" | tee -a "$out/accuracy.log"
      continue
    fi
    for model in ${MODELS:-vdcnn-9 crepe-small}; do
      if [[ $dataset == imdb ]]; then
        accuracy imdb "$model" 1 "${IMDB_EPOCHS:-10}"
      else
        accuracy "$dataset" "$model" "${SEEDS:-1 2 3}" "${EPOCHS:-30}"
      fi
    done
  done
  mkdir -p "$out/accuracy"
  for dataset in ag_news imdb; do
    [[ -d $acc/$dataset ]] || continue
    "$python" "$kit/bench/accuracy_table.py" --per-epoch "$acc/$dataset" >"$out/accuracy/$dataset.md" 2>&1 || status=1
    for run in "$acc/$dataset"/*-s*/; do
      [[ -d $run ]] || continue
      mkdir -p "$out/accuracy/$dataset/$(basename "$run")"
      cp "$run"/metrics.jsonl "$run"/log.txt "$run"/best_test.json "$run"/config.json \
        "$out/accuracy/$dataset/$(basename "$run")/" 2>/dev/null
    done
  done
  cat "$out"/accuracy/*.md
  exit $status
fi

# profile MODEL PRECISION: per-layer times at batch 128 to profile.log, the JSON line to stdout.
# profile MODEL PRECISION [TITLE [BENCH OPTIONS...]]
profile() {
  echo "### $1 batch 128 $2${3:+ $3}" >>"$out/profile.log"
  run "$textscale" bench --device cuda --model "$1" --batch-size 128 --precision "$2" --warmup 5 --steps 20 \
    --profile "${@:4}" 2>>"$out/profile.log" | sed "s/^{/{\"precision\":\"$2\",/"
}

if [[ $mode == profile ]]; then
  echo "== per-layer profiles"
  : >"$out/textscale.jsonl"
  : >"$out/pytorch.jsonl"
  for model in crepe-small vdcnn-9; do
    for precision in fp32 tf32; do
      profile "$model" "$precision" >>"$out/textscale.jsonl" || status=1
    done
    [[ $model == crepe-small ]] && { profile crepe-small tf32 "(first block unfused)" --onehot-fusion off \
      >/dev/null || status=1; }
    "$python" "$kit/bench/gpu/peer_gpu.py" --model "$model" --batch-size 128 --precision tf32 \
      >>"$out/pytorch.jsonl" || status=1
  done
  [[ ${BILSTM:-1} == 1 ]] && { STEP_TIMEOUT=${BILSTM_TIMEOUT:-150} profile bilstm tf32 >>"$out/textscale.jsonl" ||
    status=1; }
  "$python" "$kit/bench/gpu/summarize.py" "$out" | tee "$out/summary.md"
  exit $status
fi

echo "== benchmarks"
"$python" "$kit/bench/gpu/peer_gpu.py" --peak >"$out/peak.json" || status=1
cat "$out/peak.json"
models="crepe-small vdcnn-9"
# Steps per measurement, the same for textscale and PyTorch: REPEATS windows of STEPS steps each,
# the median window reported (a single window of 20 Crepe steps, 80 ms, moved by +-15% between
# runs; the windows' spread goes into summary.md).
timing="--warmup ${WARMUP:-10} --steps ${STEPS:-20} --repeats ${REPEATS:-5}"
batches="128 512"
precisions="fp32 tf32 bf16"
if [[ $mode == quick ]]; then batches=128 precisions=tf32; fi
: >"$out/textscale.jsonl"
: >"$out/pytorch.jsonl"
for model in $models; do
  for batch in $batches; do
    for precision in $precisions; do
      # shellcheck disable=SC2086
      run "$textscale" bench --device cuda --model "$model" --batch-size "$batch" --precision "$precision" \
        $timing | sed "s/^{/{\"precision\":\"$precision\",/" >>"$out/textscale.jsonl" || status=1
      # shellcheck disable=SC2086
      "$python" "$kit/bench/gpu/peer_gpu.py" --model "$model" --batch-size "$batch" --precision "$precision" \
        $timing >>"$out/pytorch.jsonl" || status=1
      [[ $mode == quick ]] && continue
      # torch.compile takes about a minute per configuration: TF32 at batch 128 only, and not at
      # all with COMPILE=0 (a short lease).
      [[ $precision == tf32 && $batch == 128 && ${COMPILE:-1} == 1 ]] || continue
      # shellcheck disable=SC2086
      "$python" "$kit/bench/gpu/peer_gpu.py" --model "$model" --batch-size "$batch" --precision "$precision" \
        $timing --compile >>"$out/pytorch.jsonl" || status=1
    done
  done
done
# The BiLSTM at batch 32 and 128 (in quick too: a few seconds each), TF32 only: the LSTM itself
# runs in TF32 under --precision bf16 as well.
if [[ ${BILSTM:-1} == 1 ]]; then
  for batch in 32 128; do bilstm_bench "$batch"; done
fi
# Crepe's first block as one operation (the default) against the same three operations unfused
# (--onehot-fusion off), back to back, TF32: ab.jsonl, a table in summary.md.
: >"$out/ab.jsonl"
for batch in $batches; do
  for variant in fused unfused; do
    fuse=on
    [[ $variant == unfused ]] && fuse=off
    # shellcheck disable=SC2086
    run "$textscale" bench --device cuda --model crepe-small --batch-size "$batch" --onehot-fusion "$fuse" \
      --precision tf32 $timing | sed "s/^{/{\"precision\":\"tf32\",\"variant\":\"$variant\",/" \
      >>"$out/ab.jsonl" || status=1
  done
done
# --precision bf16 with its convolutions in bf16 (the default) and in TF32 (--bf16-conv off),
# back to back: ab_bf16.jsonl, a table in summary.md.
: >"$out/ab_bf16.jsonl"
for model in $models; do
  for batch in $batches; do
    for variant in bf16 tf32; do
      conv=on
      [[ $variant == tf32 ]] && conv=off
      # shellcheck disable=SC2086
      run "$textscale" bench --device cuda --model "$model" --batch-size "$batch" --bf16-conv "$conv" \
        --precision bf16 $timing | sed "s/^{/{\"precision\":\"bf16\",\"variant\":\"$variant\",/" \
        >>"$out/ab_bf16.jsonl" || status=1
    done
  done
done
if [[ $mode == full ]]; then
  for model in $models; do
    profile "$model" tf32 >/dev/null || status=1
    profile "$model" bf16 >/dev/null || status=1
  done
  profile crepe-small tf32 "(first block unfused)" --onehot-fusion off >/dev/null || status=1
  [[ ${BILSTM:-1} == 1 ]] && { STEP_TIMEOUT=${BILSTM_TIMEOUT:-150} profile bilstm tf32 >/dev/null || status=1; }
fi
"$python" "$kit/bench/gpu/summarize.py" "$out" | tee "$out/summary.md"
# What the step would take if every layer ran at its floor, at this machine's measured peaks.
if [[ -s $out/peak.json ]]; then
  echo | tee -a "$out/summary.md"
  "$python" "$kit/bench/gpu/roofline.py" --peak "$out/peak.json" | tee -a "$out/summary.md" || status=1
fi
exit $status
