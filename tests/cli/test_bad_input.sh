#!/usr/bin/env bash
# Bad input: every malformed row is counted and reported with file and line, skipped by default
# or fatal under --strict; missing/unreadable input, existing output and a full disk give a
# clear error, a non-zero exit and never a half-written output.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
printf 'World\nSports\n' > classes.txt

# --- a Zhang CSV with one good row between each kind of bad row --------------------------------
{
  printf '"1","good title","good text one"\n'
  printf '"x","label","not an integer"\n'                 # line 2
  printf '"3","label","out of range"\n'                   # line 3: classes.txt has 2 classes
  printf '"2","too","many","fields"\n'                    # line 4
  printf '"1"," ","  "\n'                                 # line 5: empty text
  printf '"2","bad utf-8","caf\xe9"\n'                    # line 6
  printf '"1","stray"quote","x"\n'                        # line 7
  printf '"2","good title","good text two"\n'             # line 8
  printf '"1","long","%s"\n' "$(head -c 300 /dev/zero | tr '\0' y)"  # line 9: over --max-row-bytes 200
  printf '"2","never closed\n'                            # line 10: unterminated quote at the end
} > bad.csv

run_ts 0 preprocess --input bad.csv --format zhang --output out.h5 --max-row-bytes 200
expect_in err "bad.csv:2: label not an integer"
expect_in err "bad.csv:3: label out of range"
expect_in err "bad.csv:4: wrong number of fields"
expect_in err "bad.csv:5: empty text"
expect_in err "bad.csv:6: invalid UTF-8"
expect_in err "bad.csv:7: character after closing quote"
expect_in err "bad.csv:9: row too long"
expect_in err "bad.csv:10: unterminated quote"
expect_in out "bad rows: 8"
expect_in out "wrote out.h5: 2 rows"
[ -f out.h5 ] || fail "out.h5 was not written"
py - <<'PY' || fail "out.h5 content"
import h5py
f = h5py.File("out.h5", "r")
assert list(f["labels"][:]) == [0, 1], f["labels"][:]
assert f.attrs["num_bad_rows"] == 8
assert f.attrs["num_rows"] == 2
PY

# Only the first --max-errors-shown rows are printed; all are counted.
run_ts 0 preprocess --input bad.csv --format zhang --output few.h5 --max-row-bytes 200 --max-errors-shown 2
[ "$(grep -c 'row skipped' "$WORK/err")" = 2 ] || fail "--max-errors-shown 2 printed $(grep -c 'row skipped' "$WORK/err") rows"
expect_in out "bad rows: 8"
expect_in out "(first 2 shown above)"

# --strict: the first bad row is fatal, named with file and line, and no output appears.
run_ts 1 preprocess --input bad.csv --format zhang --output strict.h5 --strict
expect_in err "bad.csv:2: label not an integer"
expect_in err "(--strict)"
expect_absent strict.h5
no_leftovers "$WORK"

# --- missing, unreadable and wrong inputs --------------------------------------------------------
run_ts 1 preprocess --input does-not-exist.csv --output x.h5
expect_in err "cannot open input 'does-not-exist.csv': No such file or directory"
expect_absent x.h5
mkdir -p folder
run_ts 1 preprocess --input folder --format zhang --output x.h5
expect_in err "input 'folder' is a directory"
run_ts 1 preprocess --input folder --format imdb --output x.h5
expect_in err "not an aclImdb split folder"
printf '"1","a","b"\n' | gzip -c | head -c 20 > cut.csv.gz
run_ts 1 preprocess --input cut.csv.gz --output x.h5
expect_in err "cut.csv.gz' is a truncated gzip stream"
expect_absent x.h5
: > empty.csv
run_ts 1 preprocess --input empty.csv --output x.h5
expect_in err "holds no usable row"
expect_absent x.h5
run_ts 1 preprocess --input bad.csv --output x.h5 --classes missing-classes.txt
expect_in err "cannot open classes file 'missing-classes.txt'"
run_ts 2 preprocess --input bad.csv --output x.h5 --format nonsense
expect_in err "--format must be zhang, tsv or imdb"
run_ts 2 preprocess --input bad.csv
expect_in err "--output is required"
run_ts 2 preprocess --input bad.csv --output x.h5 --no-such-option
run_ts 1 preprocess --input bad.csv --output x.h5 --format tsv --labels names
expect_in err "--labels names needs --classes"

# --- an existing output is kept unless --overwrite ---------------------------------------------
echo "precious" > keep.h5
run_ts 1 preprocess --input bad.csv --format zhang --output keep.h5
expect_in err "output 'keep.h5' exists (use --overwrite to replace it)"
[ "$(cat keep.h5)" = precious ] || fail "keep.h5 was modified"
run_ts 0 preprocess --input bad.csv --format zhang --output keep.h5 --overwrite --quiet
py -c "import h5py; assert h5py.File('keep.h5','r').attrs['num_rows'] == 3" || fail "--overwrite did not replace keep.h5"

# --- a full disk: writes fail (here through a file-size limit) -----------------------------------
for i in $(seq 1 3000); do printf '"%d","title %d","some text for row %d"\n' $((i % 2 + 1)) "$i" "$i"; done > big.csv
echo "precious" > full.h5
status=0
( ulimit -f 512; exec "$TEXTSCALE_BIN" preprocess --input big.csv --output full.h5 --overwrite ) >"$WORK/out" 2>"$WORK/err" || status=$?
[ "$status" = 1 ] || fail "a full disk must exit 1, got $status: $(cat "$WORK/err")"
grep -qiE "HDF5 call failed|cannot (write|finish|sync)" "$WORK/err" || fail "no write error reported: $(cat "$WORK/err")"
[ "$(cat full.h5)" = precious ] || fail "the previous full.h5 was damaged by a failed write"
no_leftovers "$WORK"
# The same with --shuffle, where rows are spooled first.
status=0
( ulimit -f 512; exec "$TEXTSCALE_BIN" preprocess --input big.csv --output full2.h5 --shuffle ) >"$WORK/out" 2>"$WORK/err" || status=$?
[ "$status" = 1 ] || fail "a full disk with --shuffle must exit 1, got $status"
expect_absent full2.h5
no_leftovers "$WORK"

finish
