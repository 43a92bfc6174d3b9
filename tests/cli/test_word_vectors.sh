#!/usr/bin/env bash
# Word vectors learned from the training text (docs/word-embeddings.md), on the first 500 rows of
# the AG News training sample: `textscale tokens` writes exactly the rows' word ids as words
# (checked against h5py), refuses a validation file and keeps an existing output whole; fastText
# learns vectors from it in seconds; `textscale tokens --check-vectors` reads them (text, and
# converted to word2vec binary) and every vocabulary word fastText saw has its vector. Skipped
# (exit 77) without the data or without fastText (Debian package fasttext).
source "$(dirname "$0")/lib.sh"
DATA=${TEXTSCALE_DATA:-$TEXTSCALE_SOURCE_DIR/../shared/data}
FASTTEXT=${FASTTEXT:-/usr/bin/fasttext}
if [ ! -f "$DATA/ag_news/alps_train_sample/dev.tsv" ]; then
  echo "SKIP: no AG News in '$DATA' (set TEXTSCALE_DATA to a folder laid out like ../shared/data)"
  exit 77
fi
if [ ! -x "$FASTTEXT" ]; then
  echo "SKIP: no fastText at '$FASTTEXT' (apt-get install fasttext, or set FASTTEXT)"
  exit 77
fi
cd "$WORK"

# Preprocessed as jobs/main.sh does, with --min-count 2 so that some tokens are out of vocabulary.
head -n 500 "$DATA/ag_news/alps_train_sample/dev.tsv" > train.tsv
"$TEXTSCALE_BIN" preprocess --input train.tsv --format tsv --label-column 1 --labels names \
  --classes "$DATA/ag_news/classes.txt" --unescape backslash --min-count 2 \
  --validation-fraction 0.1 --seed 3 --output train.h5 -q

# 1. The tokens: line i is row i's words [0, word_lengths[i]), <unk> for out-of-vocabulary ones.
echo "an older file" > tokens.txt
run_ts 0 tokens --data train.h5 --output tokens.txt
expect_in out "wrote tokens.txt: "
py - <<'PY' || fail "tokens.txt differs from the file's word ids"
import h5py
f = h5py.File("train.h5", "r")
vocab = f["vocab"].asstr()[:]
words, lengths = f["words"][:], f["word_lengths"][:]
lines = open("tokens.txt", encoding="utf-8").read().split("\n")
assert lines[-1] == "" and len(lines) - 1 == f.attrs["num_rows"] > 400, (len(lines), f.attrs["num_rows"])
for i, line in enumerate(lines[:-1]):
    assert line == " ".join(vocab[j] for j in words[i][: lengths[i]]), (i, line)
assert "<unk>" in open("tokens.txt").read().split()
PY
no_leftovers .

# Only a training file: the validation file is refused and an existing output stays as it was.
echo "keep me" > kept.txt
run_ts 1 tokens --data train.valid.h5 --output kept.txt
expect_in err "'train.valid.h5': split is 'valid', not 'train'"
[ "$(cat kept.txt)" = "keep me" ] || fail "a refused export changed its output"
"$TEXTSCALE_BIN" preprocess --input train.tsv --format tsv --label-column 1 --labels names --no-words \
  --classes "$DATA/ag_news/classes.txt" --unescape backslash \
  --output chars.h5 -q
run_ts 1 tokens --data chars.h5 --output chars.txt
expect_in err "chars.h5"
expect_absent chars.txt
run_ts 2 tokens --data train.h5
expect_in err "--output or --check-vectors is required"
no_leftovers .

# 2. fastText skip-gram: every word kept (-minCount 1), small and fast.
"$FASTTEXT" skipgram -input tokens.txt -output vectors -dim 16 -epoch 2 -minCount 1 -minn 0 -maxn 0 \
  -thread 2 -verbose 0 || fail "fasttext skipgram failed"
[ -s vectors.vec ] || fail "fastText wrote no vectors.vec"

# 3. Coverage: the words of the vocabulary that occur in tokens.txt (all of them, as no AG News
# row is longer than the word length) against the reader's count.
run_ts 0 tokens --data train.h5 --check-vectors vectors.vec --dim 16
cp out check.txt
expected=$(py - <<'PY'
import h5py
f = h5py.File("train.h5", "r")
vocab = list(f["vocab"].asstr()[:])
counts = f["vocab_counts"][:]
seen = set(open("tokens.txt", encoding="utf-8").read().split()) - {"<unk>"}
matched = [i for i in range(2, len(vocab)) if vocab[i] in seen]
assert len(matched) >= 0.99 * (len(vocab) - 2), (len(matched), len(vocab))
words = f"{len(matched):,} of {len(vocab) - 2:,} words ("
tokens = int(sum(counts[i] for i in matched)) * 1000 // int(counts[2:].sum())
print(f"embeddings vectors.vec: 16-d, {words}{len(matched) * 1000 // (len(vocab) - 2) / 10:.1f}%), "
      f"{tokens / 10:.1f}% of training tokens")
PY
) || fail "counting the expected coverage"
expect_in check.txt "$expected"
expect_in check.txt "text format"
expect_in check.txt "<unk> has a vector"
grep -qE "\(9[0-9]\.[0-9]%|\(100\.0%" check.txt || fail "word coverage below 90%: $(cat check.txt)"

# The same vectors as word2vec binary: detected, and the same coverage.
py - <<'PY' || fail "writing vectors.bin"
import struct
lines = open("vectors.vec", "rb").read().split(b"\n")
count, dim = map(int, lines[0].split())
with open("vectors.w2v", "wb") as out:
    out.write(b"%d %d\n" % (count, dim))
    for line in lines[1 : count + 1]:
        fields = line.split()
        out.write(fields[0] + b" " + struct.pack("<%df" % dim, *map(float, fields[1:])) + b"\n")
PY
run_ts 0 tokens --data train.h5 --check-vectors vectors.w2v
expect_in out "${expected/vectors.vec/vectors.w2v}"
expect_in out "binary format"
run_ts 0 tokens --data train.h5 --check-vectors vectors.w2v --vectors-format binary
expect_in out "${expected/vectors.vec/vectors.w2v}"

# Refusals: another embedding size; fastText's model file instead of its vectors; a cut file.
run_ts 1 tokens --data train.h5 --check-vectors vectors.vec --dim 32
expect_in err "vectors.vec: line 1: the vectors are 16-dimensional, the embedding size is 32"
run_ts 1 tokens --data train.h5 --check-vectors vectors.bin
expect_in err "vectors.bin: line 1: this is a fastText model (.bin)"
head -c 2000 vectors.vec > cut.vec
run_ts 1 tokens --data train.h5 --check-vectors cut.vec
expect_in err "cut.vec: line "
expect_in err "truncated"
run_ts 2 tokens --data train.h5 --check-vectors vectors.vec --vectors-format glove
expect_in err "--vectors-format must be auto, text or binary"
finish
