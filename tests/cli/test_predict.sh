#!/usr/bin/env bash
# textscale predict on a generated corpus (no data needed), for a character model (crepe-small)
# and a word model (bilstm), each trained for a few steps:
# - raw CSV through predict equals preprocess + evaluate --predictions bitwise (same batch size,
#   a last partial batch, bad rows skipped by both, rows in input order), and the summary's
#   accuracy equals evaluate's; word rows sorted by length (the default) agree to 1e-6;
# - the same texts as plain lines, JSON Lines, standard input and gzip give the same
#   probabilities bitwise; JSON Lines ids and labels are carried; --top-k keeps the k largest;
# - records spanning lines (quoted newlines) keep their first line number;
# - bad records are reported as file:line: reason and counted; --strict stops at the first,
#   writing nothing; an existing output is kept without --overwrite;
# - a checkpoint without the text encoding (format 4) is refused naming --vocab-from, and with
#   --vocab-from gives the same predictions; a file of another vocabulary is refused.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
export OMP_NUM_THREADS=2

py - <<'PY'
import json, random
random.seed(7)
topics = [["election", "minister", "war", "treaty", "capital"], ["match", "goal", "season", "coach", "league"],
          ["market", "shares", "profit", "bank", "oil"], ["software", "chip", "internet", "space", "research"]]
common = ["the", "a", "of", "said", "on", "new", "after", "report", "week", "Tuesday"]
def text(k, n):
    return " ".join(random.choice(topics[k] if random.random() < 0.5 else common) for _ in range(n))
def row(k):
    title = text(k, random.randint(2, 6)).capitalize()
    body = text(k, random.randint(5, 40))
    if random.random() < 0.2: body += ' with a "quote", a comma'
    if random.random() < 0.1: body += " and an escaped \\n newline"
    return k, title, body
def csv(field): return '"' + field.replace('"', '""') + '"'
with open("classes.txt", "w") as f: f.write("World\nSports\nBusiness\nSci/Tech\n")
with open("train.csv", "w") as f:
    for _ in range(400):
        k, title, body = row(random.randrange(4)); f.write(",".join([csv(str(k + 1)), csv(title), csv(body)]) + "\n")
good = []
with open("test.csv", "w") as f:
    for i in range(150):
        k, title, body = row(random.randrange(4))
        if i == 20: body = "spans\ntwo lines " + body        # a quoted newline: the record starts on its first line
        if i == 40: f.write('"9","bad label","x"\n')          # label out of range
        if i == 60: f.write('"2","",""\n')                    # empty text
        f.write(",".join([csv(str(k + 1)), csv(title), csv(body)]) + "\n")
        good.append((k, title + " " + body))
# The good rows' texts: as lines (a newline written as the escape \n, which the training file's
# --unescape newline reads back) and as JSON Lines (real newlines).
with open("test.txt", "w") as f:
    for k, t in good: f.write(t.replace("\n", "\\n") + "\n")
with open("test.jsonl", "w") as f:
    for i, (k, t) in enumerate(good):
        f.write(json.dumps({"id": "doc-%d" % i, "text": t.replace("\\n", "\n"), "label": ["World", "Sports", "Business", "Sci/Tech"][k]}) + "\n")
PY
run_ts 0 preprocess --input train.csv --format zhang --classes classes.txt --word-length 48 --output train.h5
run_ts 0 preprocess --input test.csv --format zhang --classes classes.txt --vocab-from train.h5 --output test.h5
run_ts 0 train --train train.h5 --model crepe-small --features 32 --fc 64 --batch-size 32 --epochs 1 --max-steps 4 \
  --progress off --run-dir crepe
run_ts 0 train --train train.h5 --model bilstm --embed-dim 16 --hidden 12 --optimizer adam --lr 0.01 --batch-size 32 \
  --epochs 1 --max-steps 4 --progress off --run-dir bilstm

# probabilities FILE: the label, predicted, index and probability columns of a predictions CSV.
columns() { cut -d, -f3- "$1"; }
json_field() { py -c "import json,sys; print(json.load(open(sys.argv[1]))$2)" "$1"; }

for model in crepe bilstm; do
  ckpt=$model/checkpoint.h5
  run_ts 0 evaluate --checkpoint "$ckpt" --data test.h5 --batch-size 16 --predictions "$model-eval.csv" --json "$model-eval.json"
  # Rows in input order, as evaluate batches them (word rows otherwise go shortest first).
  run_ts 0 predict --checkpoint "$ckpt" --input test.csv --batch-size 16 --sort-by-length false \
    --output "$model-pred.csv" --summary-json "$model-summary.json"
  expect_in "$WORK/err" "test.csv:42: label out of range"
  expect_in "$WORK/err" "test.csv:63: empty text"
  if ! cmp -s <(columns "$model-pred.csv") <(columns "$model-eval.csv"); then
    fail "$model: predict on the CSV differs from preprocess + evaluate --predictions"
    diff <(columns "$model-pred.csv") <(columns "$model-eval.csv") | head -4 >&2
  fi
  [ "$(json_field "$model-summary.json" '["metrics"]["accuracy"]')" = "$(json_field "$model-eval.json" '["accuracy"]')" ] ||
    fail "$model: predict's accuracy differs from evaluate's"
  read -r records bad classified <<< "$(py -c "import json; j=json.load(open('$model-summary.json')); print(j['records'], j['bad'], j['classified'])")"
  [ "$records $bad $classified" = "152 2 150" ] || fail "$model: records/bad/classified $records/$bad/$classified, expected 152/2/150"
  echo "$model: predict on raw CSV = preprocess + evaluate, bitwise"
done

# Word rows sorted by length within a block (the default): other batches, the same results up to
# float rounding. Each row's LSTM reads only its own words; what a batch changes is the blocking of
# the matrix products (sums of at most 2H + E = 40 products here, each rounded to 2^-24 relative),
# well inside 1e-6 on probabilities of order 0.25.
run_ts 0 predict --checkpoint bilstm/checkpoint.h5 --input test.csv --batch-size 16 --output bilstm-sorted.csv
py - <<'PY' || fail "bilstm: rows sorted by length give other predictions"
import csv
a = list(csv.reader(open("bilstm-pred.csv")))[1:]
b = list(csv.reader(open("bilstm-sorted.csv")))[1:]
assert len(a) == len(b) == 150
for x, y in zip(a, b):
    assert x[:3] == y[:3], (x, y)
    assert max(abs(float(p) - float(q)) for p, q in zip(x[5:], y[5:])) < 1e-6, (x, y)
PY

# The record with a quoted newline starts on line 21; the ones after it are a line further on.
[ "$(sed -n 22p crepe-pred.csv | cut -d, -f1,2)" = "20,21" ] || fail "record 20 should start on line 21: $(sed -n 22p crepe-pred.csv | cut -c1-40)"
[ "$(sed -n 23p crepe-pred.csv | cut -d, -f1,2)" = "21,23" ] || fail "record 21 should start on line 23"

# The same texts in the other input formats: the same probabilities, bitwise.
probs() { cut -d, -f"$2"- "$1"; }
run_ts 0 predict --checkpoint crepe/checkpoint.h5 --input test.txt --batch-size 16 --output lines.csv
cmp -s <(probs lines.csv 3) <(probs crepe-pred.csv 4) || fail "plain lines differ from the CSV"
gzip -k test.txt
run_ts 0 predict --checkpoint crepe/checkpoint.h5 --input test.txt.gz --batch-size 16 --output gz.csv
cmp -s lines.csv gz.csv || fail "the gzip input differs from the plain one"
"$TEXTSCALE_BIN" predict --checkpoint crepe/checkpoint.h5 --input-format lines --batch-size 16 < test.txt > stdin.csv 2> "$WORK/err" ||
  fail "predict from standard input failed: $(cat "$WORK/err")"
cmp -s lines.csv stdin.csv || fail "standard input differs from the file"
run_ts 0 predict --checkpoint crepe/checkpoint.h5 --input test.jsonl --batch-size 16 --output json.csv
# json.csv: record,line,id,label,predicted,...
cmp -s <(probs json.csv 4) <(probs crepe-pred.csv 3) || fail "JSON Lines (labels, unescaped text) differ from the CSV"
[ "$(sed -n 2p json.csv | cut -d, -f3)" = "doc-0" ] || fail "JSON Lines ids are not carried: $(sed -n 2p json.csv)"
run_ts 0 predict --checkpoint bilstm/checkpoint.h5 --input test.jsonl --batch-size 16 --top-k 2 --output top.jsonl
run_ts 0 predict --checkpoint bilstm/checkpoint.h5 --input test.jsonl --batch-size 16 --output all.jsonl
py - <<'PY' || fail "--top-k does not keep the two most probable classes"
import json
top = [json.loads(l) for l in open("top.jsonl")]
full = [json.loads(l) for l in open("all.jsonl")]
assert len(top) == len(full) == 150
for t, f in zip(top, full):
    best = sorted(f["probabilities"].items(), key=lambda kv: -kv[1])[:2]
    assert [(e["class"], e["probability"]) for e in t["top"]] == best, (t, best)
    assert t["predicted"] == best[0][0] and t["label"] == f["label"] and t["id"] == f["id"]
PY
echo "formats: lines, gzip, standard input, JSON Lines and --top-k agree"

# Bad records in JSON Lines: reported with their line, counted, the rest classified.
{ head -n 3 test.jsonl; echo 'not json'; echo '{"id": 5}'; echo '{"text": "x y", "label": "Weather"}'; echo; } > bad.jsonl
run_ts 0 predict --checkpoint crepe/checkpoint.h5 --input bad.jsonl --output bad.csv
expect_in "$WORK/err" "bad.jsonl:4: invalid JSON"
expect_in "$WORK/err" "bad.jsonl:5: invalid JSON: no string field \"text\""
expect_in "$WORK/err" "bad.jsonl:6: unknown class name"
expect_in "$WORK/err" "6 records, 3 classified, 3 bad"
# --strict: stops at the first bad record, names it, writes nothing.
run_ts 1 predict --checkpoint crepe/checkpoint.h5 --input bad.jsonl --strict --output strict.csv
expect_in "$WORK/err" "bad.jsonl:4: invalid JSON"
expect_absent strict.csv
# An existing output is kept without --overwrite.
echo keep > kept.csv
run_ts 1 predict --checkpoint crepe/checkpoint.h5 --input test.txt --output kept.csv
expect_in "$WORK/err" "exists (use --overwrite"
[ "$(cat kept.csv)" = keep ] || fail "an existing output was changed"
no_leftovers "$WORK"
echo "bad records: reported, counted, --strict, existing output kept"

# A checkpoint written before checkpoints carried the text encoding.
for model in crepe bilstm; do
  cp "$model/checkpoint.h5" "$model-v4.h5"
  py - "$model-v4.h5" <<'PY'
import h5py, sys
with h5py.File(sys.argv[1], "a") as f:
    for name in ("text_options", "tokenizer"):
        if name in f.attrs: del f.attrs[name]
    if "vocab" in f: del f["vocab"]
    f.attrs["format_version"] = 4
PY
  run_ts 1 predict --checkpoint "$model-v4.h5" --input test.csv --batch-size 16 --output v4.csv
  expect_in "$WORK/err" "--vocab-from TRAIN.h5"
  run_ts 0 predict --checkpoint "$model-v4.h5" --vocab-from train.h5 --input test.csv --batch-size 16 --output v4.csv --overwrite
  cmp -s v4.csv "$model-pred.csv" || fail "$model: --vocab-from on a format 4 checkpoint changes the predictions"
done
run_ts 0 preprocess --input test.csv --format zhang --classes classes.txt --word-length 48 --output own-vocab.h5
run_ts 1 predict --checkpoint bilstm-v4.h5 --vocab-from own-vocab.h5 --input test.csv --output refused.csv
expect_in "$WORK/err" "does not match"
echo "format 4 checkpoints: refused without --vocab-from, equal with it"

finish
