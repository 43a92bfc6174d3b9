#!/usr/bin/env bash
# textscale predict under mpirun on a generated corpus (no data needed), with small blocks so the
# ranks take many blocks in turn:
# - 2 ranks write bitwise the output of 1 process, from a file (CSV with quoted newlines, bad
#   records) and from standard input (read by rank 0, broadcast), for a character and a word model;
# - --resume: a run stopped by SIGTERM keeps OUTPUT.partial and OUTPUT.progress.json; run again
#   (here with 2 ranks instead of 1) it continues and the output equals an uninterrupted run's.
source "$(dirname "$0")/../cli/lib.sh"
cd "$WORK"
export OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none)

py - <<'PY'
import random
random.seed(11)
words = ["market", "goal", "election", "software", "the", "a", "said", "week", "oil", "league", "chip", "war"]
def field(text): return '"' + text.replace('"', '""') + '"'
with open("classes.txt", "w") as f: f.write("World\nSports\nBusiness\nSci/Tech\n")
for name, rows in (("train.csv", 300), ("test.csv", 1200)):
    with open(name, "w") as f:
        for i in range(rows):
            body = " ".join(random.choice(words) for _ in range(random.randint(3, 30)))
            if i % 97 == 5: body = 'quoted "text",\nover two lines ' + body
            label = str(random.randint(1, 4)) if i % 211 != 7 else "x"   # a few bad labels
            f.write(",".join([field(label), field(body.capitalize()), field(body)]) + "\n")
PY
run_ts 0 preprocess --input train.csv --format zhang --classes classes.txt --word-length 32 --output train.h5
run_ts 0 train --train train.h5 --model crepe-small --features 16 --fc 32 --batch-size 32 --epochs 1 --max-steps 2 \
  --progress off --run-dir crepe
run_ts 0 train --train train.h5 --model bilstm --embed-dim 8 --hidden 6 --batch-size 32 --epochs 1 --max-steps 2 \
  --progress off --run-dir bilstm

small=(--batch-size 16 --block-bytes 3000 --threads 1 --quiet)
for model in crepe bilstm; do
  run_ts 0 predict --checkpoint "$model/checkpoint.h5" --input test.csv "${small[@]}" --output "$model-1.csv"
  "${MPIRUN[@]}" -np 2 "$TEXTSCALE_BIN" predict --checkpoint "$model/checkpoint.h5" --input test.csv "${small[@]}" \
    --output "$model-2.csv" > mpi.log 2>&1 || { fail "$model: predict on 2 ranks failed:"; tail -5 mpi.log >&2; }
  cmp -s "$model-1.csv" "$model-2.csv" || fail "$model: 2 ranks differ from 1 process"
  "${MPIRUN[@]}" -np 2 "$TEXTSCALE_BIN" predict --checkpoint "$model/checkpoint.h5" "${small[@]}" --input-format zhang \
    < test.csv > "$model-stdin.csv" 2> mpi.log || { fail "$model: predict from standard input on 2 ranks failed:"; tail -5 mpi.log >&2; }
  cmp -s "$model-1.csv" "$model-stdin.csv" || fail "$model: standard input on 2 ranks differs from the file on 1 process"
done
records=$(($(wc -l < crepe-1.csv) - 1))
[ "$records" -gt 1100 ] || fail "only $records predictions"
echo "2 ranks = 1 process, bitwise (file and standard input; $records records)"

# --resume: SIGTERM once the first rounds are written, then finish on 2 ranks.
big=(--checkpoint crepe/checkpoint.h5 --input test.csv --batch-size 16 --block-bytes 600 --threads 1 --quiet)
"$TEXTSCALE_BIN" predict "${big[@]}" --resume --output resumed.csv 2> resume1.err &
pid=$!
for _ in $(seq 600); do [ -f resumed.csv.progress.json ] && break; sleep 0.05; done
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
if [ "$status" = 0 ]; then
  echo "note: the run finished before the signal; the resume is not exercised" >&2
  fail "predict finished before SIGTERM (make the input larger)"
else
  [ "$status" = 143 ] || fail "predict stopped by SIGTERM exited $status, expected 143"
  [ -f resumed.csv.partial ] && [ -f resumed.csv.progress.json ] || fail "--resume kept no partial output"
  expect_absent resumed.csv
  "${MPIRUN[@]}" -np 2 "$TEXTSCALE_BIN" predict "${big[@]}" --resume --output resumed.csv > mpi.log 2>&1 ||
    { fail "the resumed run failed:"; tail -5 mpi.log >&2; }
  run_ts 0 predict "${big[@]}" --output whole.csv
  cmp -s resumed.csv whole.csv || fail "the resumed output differs from an uninterrupted run's"
  expect_absent resumed.csv.partial resumed.csv.progress.json
  echo "--resume after SIGTERM: the output equals an uninterrupted run's"
fi
finish
