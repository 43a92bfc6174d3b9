#!/usr/bin/env bash
# Damage is an error naming the file and what is damaged, never data read silently:
# - a flipped byte inside a checkpoint tensor: evaluate and train --resume exit 1 naming the
#   tensor (attribute tensor_sha256); a checkpoint of format version 5 (without it) loads with a
#   warning;
# - a flipped byte inside a chunk of a preprocessed file's `chars`: training and evaluation exit 1
#   naming the dataset (HDF5's Fletcher-32 filter), for chunks written through HDF5 and for those
#   preallocated and written with direct I/O;
# - a changed vocabulary entry: exit 1 (description_sha256);
# - a file of schema_version 1 (no checksums) trains, with one warning.
source "$(dirname "$0")/lib.sh"
cd "$WORK"

# 400 rows of two classes, with words that differ by class.
py - <<'PY'
import random
random.seed(7)
words = {1: "alpha beta gamma delta river stone", 2: "omega sigma kappa cloud green field"}
with open("rows.csv", "w") as f:
    for i in range(400):
        label = 1 + i % 2
        text = " ".join(random.choice(words[label].split()) for _ in range(12))
        f.write(f'"{label}","title {i}","{text}"\n')
PY
printf 'one\ntwo\n' > classes.txt
run_ts 0 preprocess --input rows.csv --format zhang --classes classes.txt --char-length 256 --word-length 16 \
  --output data.h5
tiny=(--model crepe-small --features 16 --fc 16 --batch-size 32 --threads 1 --progress off)
run_ts 0 train --train data.h5 --test data.h5 "${tiny[@]}" --epochs 1 --max-steps 3 --run-dir run
[ -f run/checkpoint.h5 ] || fail "no checkpoint"
run_ts 0 evaluate --checkpoint run/checkpoint.h5 --data data.h5
grep -q "unverified" "$WORK/err" && fail "a fresh checkpoint or file warned: $(cat "$WORK/err")"

# flip FILE DATASET: XOR one byte in the middle of DATASET's stored data (of each of its chunks,
# for a chunked dataset) with 0x01, which keeps every value valid (a code, an id, a float).
flip() {
  py - "$1" "$2" <<'PY'
import sys, h5py
path, name = sys.argv[1], sys.argv[2]
with h5py.File(path, "r") as f:
    d = f[name]
    if d.chunks:  # each chunk, less its 4-byte checksum
        infos = [d.id.get_chunk_info(i) for i in range(d.id.get_num_chunks())]
        places = [(i.byte_offset, i.size - 4) for i in infos]
    else:
        places = [(d.id.get_offset(), d.id.get_storage_size())]
with open(path, "r+b") as f:
    for offset, size in places:
        f.seek(offset + size // 2)
        byte = f.read(1)[0]
        f.seek(offset + size // 2)
        f.write(bytes([byte ^ 0x01]))
PY
}

# --- checkpoint tensors -----------------------------------------------------------------------
tensor=$(py -c "import h5py; print(sorted(h5py.File('run/checkpoint.h5', 'r')['parameters'])[0])")
cp run/checkpoint.h5 flipped.h5
flip flipped.h5 "parameters/$tensor"
run_ts 1 evaluate --checkpoint flipped.h5 --data data.h5
expect_in "$WORK/err" "flipped.h5: parameters/$tensor is damaged"
mkdir -p resumed && cp flipped.h5 resumed/checkpoint.h5
run_ts 1 train --resume resumed/checkpoint.h5 --max-steps 5
expect_in "$WORK/err" "resumed/checkpoint.h5: parameters/$tensor is damaged"
cp run/checkpoint.h5 slot.h5
flip slot.h5 optimizer/slot0
mkdir -p slot && cp slot.h5 slot/checkpoint.h5
run_ts 1 train --resume slot/checkpoint.h5 --max-steps 5
expect_in "$WORK/err" "slot/checkpoint.h5: optimizer/slot0 is damaged"
# Format version 5 (before tensor digests): loads and resumes, with a warning.
mkdir -p old && cp run/checkpoint.h5 old/checkpoint.h5
py - <<'PY'
import h5py, numpy
with h5py.File("old/checkpoint.h5", "r+") as f:
    f.attrs["format_version"] = numpy.int64(5)
    del f.attrs["tensor_sha256"]
PY
run_ts 0 evaluate --checkpoint old/checkpoint.h5 --data data.h5
expect_in "$WORK/err" "old/checkpoint.h5: checkpoint format version 5 has no tensor checksums"
run_ts 0 train --resume old/checkpoint.h5 --max-steps 4
expect_in "$WORK/err" "has no tensor checksums"
# A version 6 checkpoint whose digests are gone is damaged, not old.
cp run/checkpoint.h5 stripped.h5
py -c "import h5py; del h5py.File('stripped.h5', 'r+').attrs['tensor_sha256']"
run_ts 1 evaluate --checkpoint stripped.h5 --data data.h5
expect_in "$WORK/err" "stripped.h5: attribute tensor_sha256 missing"
cp run/checkpoint.h5 partial.h5
py - "$tensor" <<'PY'
import h5py, json, sys
with h5py.File("partial.h5", "r+") as f:
    digests = json.loads(f.attrs["tensor_sha256"])
    del digests["parameters/" + sys.argv[1]]
    f.attrs["tensor_sha256"] = json.dumps(digests)
PY
run_ts 1 evaluate --checkpoint partial.h5 --data data.h5
expect_in "$WORK/err" "partial.h5: parameters/$tensor has no SHA-256 in attribute tensor_sha256"
echo "checkpoints: checked"

# --- preprocessed files -----------------------------------------------------------------------
py - <<'PY' || fail "data.h5 lacks its checksums"
import h5py
f = h5py.File("data.h5", "r")
assert f.attrs["schema_version"] == 2
assert all(f[n].fletcher32 for n in ("labels", "chars", "char_lengths", "words", "word_lengths", "vocab_counts"))
assert len(f.attrs["description_sha256"]) == 64
PY
cp data.h5 chars.h5
flip chars.h5 chars
run_ts 1 train --train chars.h5 "${tiny[@]}" --epochs 1 --max-steps 1 --run-dir run-chars
expect_in "$WORK/err" "chars.h5: dataset 'chars' is damaged (checksum mismatch in a chunk) — re-run preprocess"
run_ts 1 evaluate --checkpoint run/checkpoint.h5 --data chars.h5
expect_in "$WORK/err" "chars.h5: dataset 'chars' is damaged (checksum mismatch in a chunk)"
# Rows written around HDF5 into preallocated chunks (outputs of 64 MiB or more whose row count is
# known, here by --shuffle: 8192 rows of 8192 characters), with the checksums textscale computes;
# HDF5 (h5py) reads them, and detects the same damage.
py -c "
for i in range(8192): print(f'\"{1 + i % 2}\",\"t\",\"{\"abc \" * 40}\"')" > big.csv
run_ts 0 preprocess --input big.csv --format zhang --no-words --char-length 8192 --shuffle --seed 1 --output big.h5
py -c "import h5py; f = h5py.File('big.h5', 'r'); f['chars'][:]; f['labels'][:]" ||
  fail "big.h5: HDF5 refuses the checksums of its preallocated chunks"
flip big.h5 chars
run_ts 1 train --train big.h5 "${tiny[@]}" --epochs 1 --max-steps 1 --run-dir run-big
expect_in "$WORK/err" "big.h5: dataset 'chars' is damaged (checksum mismatch in a chunk)"
# A changed vocabulary entry.
cp data.h5 vocab.h5
py -c "import h5py; h5py.File('vocab.h5', 'r+')['vocab'][2] = 'changed'"
run_ts 1 train --train vocab.h5 "${tiny[@]}" --epochs 1 --max-steps 1 --run-dir run-vocab
expect_in "$WORK/err" "vocab.h5: the metadata (num_classes, classes, alphabet, vocab) does not match description_sha256"
run_ts 1 inspect vocab.h5
expect_in "$WORK/err" "does not match description_sha256"
# A class name changed the same way.
cp data.h5 classes.h5
py -c "import h5py; h5py.File('classes.h5', 'r+').attrs['classes'] = ['one', 'three']"
run_ts 1 evaluate --checkpoint run/checkpoint.h5 --data classes.h5
expect_in "$WORK/err" "does not match description_sha256"
# schema_version 1: the rows without the Fletcher-32 filter, no description_sha256. Read with one
# warning.
py - <<'PY'
import h5py, numpy
with h5py.File("data.h5", "r") as src, h5py.File("old.h5", "w") as dst:
    for key, value in src.attrs.items():
        if key != "description_sha256":
            dst.attrs[key] = value
    dst.attrs["schema_version"] = numpy.int64(1)
    for name, d in src.items():
        dst.create_dataset(name, data=d[...], chunks=d.chunks, maxshape=d.maxshape, dtype=d.dtype)
PY
run_ts 0 train --train old.h5 --test old.h5 "${tiny[@]}" --epochs 1 --max-steps 2 --run-dir run-old
expect_in "$WORK/err" "old.h5: schema_version 1 has no checksums; its data is read unverified"
[ "$(grep -c "old.h5: schema_version 1 has no checksums" "$WORK/err")" = 1 ] ||
  fail "not one warning for old.h5: $(cat "$WORK/err")"
echo "preprocessed files: checked"
finish
