#!/usr/bin/env bash
# Input layouts on small hand-made files: Zhang CSV with 2, 3 and 4 columns (Yahoo Answers),
# classes.txt picked up beside the input, TSV column selection and label kinds, CRLF, encoding
# options, the content digest. Values are checked with h5py against the rules of
# docs/hdf5-schema.md.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
mkdir -p yahoo
printf 'Society\nScience\nHealth\n' > yahoo/classes.txt
# Yahoo Answers: class, question title, question content, best answer.
printf '"2","Why?","Because \\n it is","It is.\\nYes"\n"3","Q","","A ""quoted"" answer"\n' > yahoo/train.csv
"$TEXTSCALE_BIN" preprocess --input yahoo/train.csv --output yahoo.h5 > out
expect_in out "wrote yahoo.h5: 2 rows; per class Society=0, Science=1, Health=1"
py - <<'PY' || fail "Yahoo-style columns"
import h5py
f = h5py.File("yahoo.h5", "r")
alphabet = f.attrs["alphabet"]
def text(i):
    k = f["char_lengths"][i]
    return "".join(alphabet[c - 1] if c else "_" for c in f["chars"][i][:k][::-1])
# Columns joined by one space; "\n" unescaped to a newline; space and unknown symbols are code 0.
assert text(0) == "why?_because_\n_it_is_it_is.\nyes", repr(text(0))
assert text(1) == 'q__a_"quoted"_answer', repr(text(1))
assert list(f.attrs["classes"]) == ["Society", "Science", "Health"]
assert list(f["labels"][:]) == [1, 2]
vocab = f["vocab"].asstr()[:]
assert [vocab[i] for i in f["words"][1][: f["word_lengths"][1]]] == ["q", "a", "quoted", "answer"]
PY

# Two-column Zhang CSV (Yelp/IMDB polarity), CRLF line ends, no classes.txt: classes unknown.
printf '"1","bad"\r\n"2","good"\r\n' > polarity.csv
"$TEXTSCALE_BIN" preprocess --input polarity.csv --output polarity.h5 --char-length 8 --word-length 2 > out
expect_in out "wrote polarity.h5: 2 rows; per class 0=1, 1=1"
py - <<'PY' || fail "two columns, CRLF, small L and W"
import h5py
f = h5py.File("polarity.h5", "r")
assert f["chars"].shape == (2, 8) and f["words"].shape == (2, 2)
assert list(f["chars"][1]) == [4, 15, 15, 7, 0, 0, 0, 0]  # "good" reversed, no trailing CR
assert f.attrs["num_classes"] == 2 and len(f.attrs["classes"]) == 0
PY

# TSV: text in column 2, label names in column 0, an ignored column 1, labels 1-based elsewhere.
printf 'pos\tid1\tGreat film\nneg\tid2\tDull\n' > named.tsv
printf 'neg\npos\n' > names.txt
"$TEXTSCALE_BIN" preprocess --input named.tsv --format tsv --labels names --classes names.txt --text-columns 2 \
  --output named.h5 --no-chars > out
expect_in out "wrote named.h5: 2 rows; per class neg=1, pos=1"
py - <<'PY' || fail "TSV column selection"
import h5py
f = h5py.File("named.h5", "r")
assert "chars" not in f and list(f["labels"][:]) == [1, 0]
vocab = f["vocab"].asstr()[:]
assert [vocab[i] for i in f["words"][0][:2]] == ["great", "film"]  # id1 is not text
PY
printf '1,a b\n2,c\n' > ones.csv
"$TEXTSCALE_BIN" preprocess --input ones.csv --format tsv --delimiter , --labels index1 --output ones.h5 -q
py -c "import h5py; assert list(h5py.File('ones.h5','r')['labels'][:]) == [0, 1]" || fail "--labels index1"

# --vocab-size counts <pad> and <unk>; ties in byte order; --min-count.
printf '1\tb a b c c d\n' > counts.tsv
"$TEXTSCALE_BIN" preprocess --input counts.tsv --format tsv --vocab-size 4 --output v4.h5 -q
"$TEXTSCALE_BIN" preprocess --input counts.tsv --format tsv --min-count 2 --output m2.h5 -q
py - <<'PY' || fail "vocabulary size and order"
import h5py
v4 = h5py.File("v4.h5", "r")
assert list(v4["vocab"].asstr()[:]) == ["<pad>", "<unk>", "b", "c"]
assert list(v4["vocab_counts"][:]) == [0, 2, 2, 2]
assert list(v4["words"][0][:6]) == [2, 1, 2, 3, 3, 1] and v4.attrs["vocab_size"] == 4
assert list(h5py.File("m2.h5", "r")["vocab"].asstr()[:]) == ["<pad>", "<unk>", "b", "c"]
PY

# --compress writes the same values through HDF5's deflate filter.
"$TEXTSCALE_BIN" preprocess --input yahoo/train.csv --output packed.h5 --compress 4 -q
py - <<'PY' || fail "--compress"
import h5py
a, b = h5py.File("yahoo.h5", "r"), h5py.File("packed.h5", "r")
assert b["chars"].compression == "gzip" and (a["chars"][:] == b["chars"][:]).all()
PY
# gzip arriving on standard input is recognised by its magic bytes.
gzip -c yahoo/train.csv | "$TEXTSCALE_BIN" preprocess --input - --classes yahoo/classes.txt --output piped.h5 -q
py - <<'PY' || fail "gzip on standard input"
import h5py
a, b = h5py.File("yahoo.h5", "r"), h5py.File("piped.h5", "r")
assert (a["chars"][:] == b["chars"][:]).all() and b.attrs["source_file"] == "<stdin>"
assert "hdf5 1." in b.attrs["libraries"]
PY

# --- Content digest -------------------------------------------------------------------------------
# A 3 MB input (three 1 MiB blocks, so threads share the work): the same command with 1 and 3
# threads gives the same digest, another --seed another one; the validation file has its own.
py - <<'PY'
import random
rng = random.Random(5)
words = ["alpha", "beta", "gamma", "delta", "news", "film", "good", "bad", "x1", "Zeta"]
with open("many.csv", "w") as out:
    for i in range(20000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 40)))
        out.write(f'"{rng.randint(1, 4)}","title {i}","{text}"\n')
PY
for run in "t1:--threads 1 --shuffle --seed 1" "t3:--threads 3 --shuffle --seed 1" "s2:--threads 3 --shuffle --seed 2" \
  "plain:--threads 3" "nowords:--no-words" "nochars:--no-chars"; do
  read -r -a options <<< "${run#*:}"
  "$TEXTSCALE_BIN" preprocess --input many.csv --output "${run%%:*}.h5" --validation-fraction 0.1 "${options[@]}" -q
done
digest() { py -c "import h5py, sys; print(h5py.File(sys.argv[1], 'r').attrs['content_sha256'])" "$1"; }
[ "$(digest t1.h5)" = "$(digest t3.h5)" ] || fail "the content digest depends on --threads"
[ "$(digest t1.valid.h5)" = "$(digest t3.valid.h5)" ] || fail "the validation file's digest depends on --threads"
[ "$(digest t1.h5)" != "$(digest s2.h5)" ] || fail "another --seed gave the same content digest"
[ "$(digest t1.h5)" != "$(digest plain.h5)" ] || fail "shuffled and unshuffled rows gave the same content digest"
[ "$(digest t1.h5)" != "$(digest t1.valid.h5)" ] || fail "the validation file has the training file's digest"
# The digest is what docs/hdf5-schema.md says it is: its Python recipe, run on each kind of file.
sed -n '/^def content_sha256/,/^    return out.hexdigest()/p' "$TEXTSCALE_SOURCE_DIR/docs/hdf5-schema.md" > recipe.py
[ -s recipe.py ] || fail "no content_sha256 recipe in docs/hdf5-schema.md"
py - t1.h5 t1.valid.h5 s2.h5 plain.h5 nowords.h5 nochars.h5 yahoo.h5 <<'PY' || fail "content digest recipe"
import hashlib, struct, sys, h5py
exec(open("recipe.py").read())
for path in sys.argv[1:]:
    stored = h5py.File(path, "r").attrs["content_sha256"]
    assert content_sha256(path) == stored, (path, content_sha256(path), stored)
PY
# inspect shows it; a file made before content digests is still read, its identity unknown.
"$TEXTSCALE_BIN" inspect t1.h5 > out || fail "inspect t1.h5"
expect_in out "content sha256 $(digest t1.h5)"
cp t1.h5 old.h5
py -c "import h5py; del h5py.File('old.h5', 'r+').attrs['content_sha256']"
"$TEXTSCALE_BIN" inspect old.h5 --row 0 > out || fail "inspect of a file without a content digest"
expect_in out "content sha256 unknown"
expect_in out "row 0: label"
finish
