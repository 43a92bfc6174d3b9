#!/usr/bin/env bash
# Preprocesses every dataset in the data folder (TEXTSCALE_DATA, default ../shared/data) and checks
# counts, class balance, hand-computed encodings, readability by h5py and h5dump, that the IMDB
# folder and its CSV give identical tensors, and that threads, stdin and .gz do not change results.
source "$(dirname "$0")/../cli/lib.sh"
DATA=${TEXTSCALE_DATA:-$TEXTSCALE_SOURCE_DIR/../shared/data}
if [ ! -f "$DATA/ag_news/test.csv" ]; then
  echo "SKIP: no real data in '$DATA' (set TEXTSCALE_DATA to a folder laid out like ../shared/data)"
  exit 77
fi
ts() { "$TEXTSCALE_BIN" "$@"; }
cd "$WORK"

# --- AG News test split (Zhang CSV, classes.txt beside it) --------------------------------------
ts preprocess --input "$DATA/ag_news/test.csv" --output ag_test.h5 > out
expect_in out "wrote ag_test.h5: 7600 rows; per class World=1900, Sports=1900, Business=1900, Sci/Tech=1900"
expect_in out "bad rows: 0"
py - "$DATA/ag_news/test.csv" <<'PY' || fail "AG News test encoding"
import csv, sys, h5py, numpy as np
f = h5py.File("ag_test.h5", "r")
labels, chars, words = f["labels"], f["chars"], f["words"]
assert labels.shape == (7600,) and labels.dtype == np.int32
assert chars.shape == (7600, 1014) and chars.dtype == np.uint8
assert words.shape == (7600, 300) and words.dtype == np.int32
assert list(np.bincount(labels[:])) == [1900] * 4
assert [str(c) for c in f.attrs["classes"]] == ["World", "Sports", "Business", "Sci/Tech"]
assert f.attrs["schema_version"] == 2 and f.attrs["num_rows"] == 7600
assert all(f[name].fletcher32 for name in ("labels", "chars", "char_lengths", "words", "word_lengths"))
assert f.attrs["source_sha256"] == "521465c2428ed7f02f8d6db6ffdd4b5447c1c701962353eb2c40d548c3c85699"
alphabet = f.attrs["alphabet"]
assert len(alphabet) == 69 and alphabet.startswith("abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+=<>()[]{}")

# Row 0 by hand: '"3","Fears for T N pension after talks","Unions ... Federal Mogul."'
# class 3 -> label 2; text = title + " " + description, 161 characters, stored reversed:
# '.' is symbol 40, 'l' 12, 'u' 21, 'g' 7, 'o' 15, 'm' 13, ' ' 0; the last kept is 'f' (6).
assert labels[0] == 2
assert f["char_lengths"][0] == 161
assert list(chars[0, :7]) == [40, 12, 21, 7, 15, 13, 0]
assert chars[0, 160] == 6 and chars[0, 159] == 5 and not chars[0, 161:].any()
vocab = list(f["vocab"].asstr()[:])
assert vocab[:2] == ["<pad>", "<unk>"]
assert [vocab[i] for i in words[0, :5]] == ["fears", "for", "t", "n", "pension"]
assert f["word_lengths"][0] == 25 and not words[0, 25:].any()

# Rows 1-40 against a direct reading of the rules (default --unescape newline).
index = {c: i + 1 for i, c in enumerate(alphabet)}
with open(sys.argv[1], encoding="utf-8", newline="") as source:
    for r, row in enumerate(csv.reader(source)):
        if r > 40: break
        text = " ".join(row[1:]).replace("\\n", "\n").lower()[:1014]
        expected = [index.get(c, 0) for c in reversed(text)] + [0] * (1014 - len(text))
        assert list(chars[r]) == expected, r
        assert labels[r] == int(row[0]) - 1
# Row 1 holds "second\team": under --unescape newline the backslash stays a backslash (47).
assert 47 in chars[1]
PY

# h5dump reads it, and the tensors are chunked by rows.
h5dump -H ag_test.h5 > dump || fail "h5dump -H failed"
expect_in dump 'DATASET "chars"'
expect_in dump 'H5T_STD_U8LE'
expect_in dump 'DATASET "vocab"'
h5dump -d labels -s 0 -c 3 ag_test.h5 > dump || fail "h5dump -d labels failed"
expect_in dump "(0): 2, 3, 3"
py - <<'PY' || fail "chunk layout"
import h5py
f = h5py.File("ag_test.h5", "r")
for name in ("chars", "words"):
    d = f[name]
    assert d.chunks is not None and d.chunks[1] == d.shape[1] and d.chunks[0] < d.shape[0], (name, d.chunks)
assert f["labels"].chunks is not None
PY

# AG News with backslash line breaks: the same position becomes a newline (69).
ts preprocess --input "$DATA/ag_news/test.csv" --output ag_bs.h5 --unescape backslash --no-words -q
py - <<'PY' || fail "--unescape backslash"
import h5py, numpy as np
a, b = h5py.File("ag_test.h5", "r")["chars"], h5py.File("ag_bs.h5", "r")["chars"]
row_a, row_b = a[1], b[1]
assert 47 in row_a and 47 not in row_b and 69 in row_b
assert (a[0] == b[0]).all()
assert "words" not in h5py.File("ag_bs.h5", "r")
PY

# --- AG News training sample: TSV text<TAB>classname, names mapped through classes.txt ---------
ts preprocess --input "$DATA/ag_news/alps_train_sample/dev.tsv" --format tsv --label-column 1 --labels names \
  --classes "$DATA/ag_news/classes.txt" --unescape backslash --output ag_train.h5 > out
expect_in out "wrote ag_train.h5: 10001 rows; per class World=2509, Sports=2458, Business=2496, Sci/Tech=2538"
# The test split reuses the training vocabulary.
ts preprocess --input "$DATA/ag_news/test.csv" --unescape backslash --vocab-from ag_train.h5 --output ag_test2.h5 > out
expect_in out "1 pass"
py - <<'PY' || fail "--vocab-from"
import h5py
a, b = h5py.File("ag_train.h5", "r"), h5py.File("ag_test2.h5", "r")
assert list(a["vocab"][:]) == list(b["vocab"][:])
assert list(a["vocab_counts"][:]) == list(b["vocab_counts"][:])  # training counts travel with it
assert b.attrs["split"] == "test" and b.attrs["vocab_source"] == "ag_train.h5"
assert a.attrs["split"] == "train" and a.attrs["vocab_source"] == "self"
PY

# --- SST-2: label<TAB>text with a header ---------------------------------------------------------
ts preprocess --input "$DATA/sst2/train.tsv" --format tsv --header --output sst_train.h5 > out
expect_in out "wrote sst_train.h5: 67349 rows; per class 0=29780, 1=37569"
ts preprocess --input "$DATA/sst2/dev.tsv" --format tsv --header --vocab-from sst_train.h5 --output sst_dev.h5 > out
expect_in out "wrote sst_dev.h5: 872 rows; per class 0=428, 1=444"
ts preprocess --input "$DATA/sst2/test.tsv" --format tsv --header --vocab-from sst_train.h5 --output sst_test.h5 > out
expect_in out "wrote sst_test.h5: 1821 rows; per class 0=912, 1=909"

# --- Amazon 5-star sample: Zhang form, and the original with class names --------------------------
ts preprocess --input "$DATA/amazon_review_full_sample/test_zhang_format.csv" --output amazon.h5 > out
expect_in out "wrote amazon.h5: 999 rows; per class 0=223, 1=216, 2=185, 3=196, 4=179"
printf 'Very Negative\nNegative\nNeutral\nPositive\nVery Positive\n' > stars.txt
ts preprocess --input "$DATA/amazon_review_full_sample/test.csv" --format tsv --delimiter , --header \
  --labels names --classes stars.txt --output amazon_named.h5 > out
expect_in out "wrote amazon_named.h5: 999 rows; per class Very Negative=223, Negative=216, Neutral=185, Positive=196, Very Positive=179"

# --- IMDB: gzip CSV, the aclImdb folder, standard input -------------------------------------------
ts preprocess --input "$DATA/imdb/train.csv.gz" --output imdb_csv.h5 > out
expect_in out "wrote imdb_csv.h5: 25000 rows; per class 0=12500, 1=12500"
tar -xzf "$DATA/imdb/aclImdb_labelled.tar.gz" -C "$WORK"
ts preprocess --input aclImdb/train --format imdb --output imdb_dir.h5 > out
expect_in out "wrote imdb_dir.h5: 25000 rows; per class neg=12500, pos=12500"
ts preprocess --input aclImdb/test --format imdb --vocab-from imdb_dir.h5 --output imdb_dir_test.h5 > out
expect_in out "wrote imdb_dir_test.h5: 25000 rows; per class neg=12500, pos=12500"
gzip -dc "$DATA/imdb/train.csv.gz" | ts preprocess --input - --output imdb_stdin.h5 --threads 1 > out
expect_in out "wrote imdb_stdin.h5: 25000 rows"
py - <<'PY' || fail "IMDB folder, CSV, stdin and one thread must give identical tensors"
import h5py
files = [h5py.File(n, "r") for n in ("imdb_csv.h5", "imdb_dir.h5", "imdb_stdin.h5")]
for name in ("labels", "chars", "char_lengths", "words", "word_lengths", "vocab"):
    first = files[0][name][:]
    for other in files[1:]:
        assert (other[name][:] == first).all(), (name, other.filename)
assert files[2].attrs["source_file"] == "<stdin>"
assert files[0].attrs["source_sha256"] == "20db13acacc3ad88e9d112a7834a8ef24e7d51bea2c62df972881b505933b485"
# The same tensors, vocabulary and classes: the same content digest, whatever the source and threads.
assert files[0].attrs["content_sha256"] == files[2].attrs["content_sha256"]
PY

# Shuffle and a validation split: deterministic, disjoint, complete, classes mixed.
ts preprocess --input "$DATA/imdb/train.csv.gz" --output imdb_sh.h5 --shuffle --seed 7 --validation-fraction 0.1 > out
ts preprocess --input "$DATA/imdb/train.csv.gz" --output imdb_sh2.h5 --shuffle --seed 7 --validation-fraction 0.1 -q
py - <<'PY' || fail "shuffle and validation split"
import h5py, numpy as np
ref = h5py.File("imdb_csv.h5", "r")
t, v = h5py.File("imdb_sh.h5", "r"), h5py.File("imdb_sh.valid.h5", "r")
t2, v2 = h5py.File("imdb_sh2.h5", "r"), h5py.File("imdb_sh2.valid.h5", "r")
assert t["labels"].shape[0] + v["labels"].shape[0] == 25000
assert 2000 < v["labels"].shape[0] < 3000
assert v.attrs["split"] == "valid"
for name in ("labels", "chars", "words"):
    assert (t[name][:] == t2[name][:]).all() and (v[name][:] == v2[name][:]).all(), name
# Shuffled: the first 1000 labels are mixed (the source is 12,500 negatives then positives).
assert 300 < t["labels"][:1000].sum() < 700
# Every review appears exactly once across the two files (the character rows, as multisets:
# IMDB holds a few duplicate reviews).
from collections import Counter
rows = lambda f: Counter(bytes(r) for r in f["chars"][:])
assert rows(t) + rows(v) == rows(ref)
# The vocabulary was built on the training part only, and both files carry it.
assert list(t["vocab"][:]) == list(v["vocab"][:])
assert list(t["vocab"][:]) != list(ref["vocab"][:])
# The same command twice: the same content digests; the validation file has its own.
assert t.attrs["content_sha256"] == t2.attrs["content_sha256"] and v.attrs["content_sha256"] == v2.attrs["content_sha256"]
assert t.attrs["content_sha256"] != v.attrs["content_sha256"]
PY

finish
