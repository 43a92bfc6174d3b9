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
run_ts 2 preprocess --input bad.csv --output x.h5 --format tsv --labels names
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
grep -qiE "cannot (write|finish|sync).*File too large" "$WORK/err" || fail "no write error reported: $(cat "$WORK/err")"
! grep -qE "\.(cpp|h):[0-9]+|\bH5[A-Z]|HDF5 call" "$WORK/err" || fail "the write error quotes HDF5 calls or source lines: $(cat "$WORK/err")"
# --log-level debug adds them.
( ulimit -f 512; exec "$TEXTSCALE_BIN" preprocess --input big.csv --output full.h5 --overwrite --log-level debug ) >"$WORK/out" 2>"$WORK/err" || true
expect_in "$WORK/err" "debug: HDF5 call failed"
[ "$(cat full.h5)" = precious ] || fail "the previous full.h5 was damaged by a failed write"
no_leftovers "$WORK"
# The same with --shuffle, where rows are spooled first.
status=0
( ulimit -f 512; exec "$TEXTSCALE_BIN" preprocess --input big.csv --output full2.h5 --shuffle ) >"$WORK/out" 2>"$WORK/err" || status=$?
[ "$status" = 1 ] || fail "a full disk with --shuffle must exit 1, got $status"
expect_absent full2.h5
no_leftovers "$WORK"


# --- outputs that would destroy something ------------------------------------------------------
printf '"1","a","b"\n"2","c","d"\n' > source.csv
cp source.csv source.keep
run_ts 2 preprocess --input source.csv --output source.csv --overwrite
expect_in err "--output must differ from --input"
cmp -s source.csv source.keep || fail "--output equal to --input replaced the input"
mkdir -p out-folder
run_ts 1 preprocess --input source.csv --output out-folder --overwrite
expect_in err "output 'out-folder' is a folder"
# A validation output that cannot be written leaves the previous training output as it was.
echo "precious" > kept.h5
run_ts 1 preprocess --input big.csv --output kept.h5 --overwrite --validation-fraction 0.5 --validation-output out-folder
expect_in err "output 'out-folder' is a folder"
[ "$(cat kept.h5)" = precious ] || fail "a failed run replaced kept.h5"
no_leftovers "$WORK"

# --- both splits of one run count the same classes, even when one split lacks a class ----------
{ for i in $(seq 30); do printf '%d\tt %d\n' $((i % 3)) "$i"; done; printf '3\trare\n'; } > classes4.tsv
run_ts 0 preprocess --input classes4.tsv --format tsv --labels index0 --no-words --output nc.h5 --validation-fraction 0.3
py - <<'PY' || fail "train and validation files disagree on num_classes"
import h5py
a, b = h5py.File("nc.h5", "r"), h5py.File("nc.valid.h5", "r")
assert a.attrs["num_classes"] == b.attrs["num_classes"] == 4, (a.attrs["num_classes"], b.attrs["num_classes"])
PY

# --- a huge label without a class list is a bad row, not millions of empty classes --------------
printf '2147483647\ta\n1\tb\n0\tc\n99999999999999999999\td\n' > huge.tsv
run_ts 0 preprocess --input huge.tsv --format tsv --labels index0 --no-words --output huge.h5
expect_in err "huge.tsv:1: label out of range"
expect_in err "huge.tsv:4: label out of range"
expect_in out "wrote huge.h5: 2 rows"
# One stray label far above the others (1048575 among 0 and 1) is past --max-classes (1000 by
# default): a bad row, not 1,048,576 classes.
{ for i in $(seq 20); do printf '%d\tt %d\n' $((i % 2)) "$i"; done; printf '1048575\tstray\n'; } > stray.tsv
run_ts 0 preprocess --input stray.tsv --format tsv --labels index0 --no-words --output stray.h5
expect_in err "stray.tsv:21: label out of range: label 1048575 is outside 0..999 (no class list"
py -c "import h5py; assert h5py.File('stray.h5','r').attrs['num_classes'] == 2" || fail "a stray label made classes"
run_ts 1 preprocess --input stray.tsv --format tsv --labels index0 --no-words --output x.h5 --strict
expect_absent x.h5
run_ts 2 preprocess --input stray.tsv --format tsv --labels index0 --no-words --output x.h5 --max-classes 0
expect_in err "--max-classes must be in 1..1048576"
# Raised on purpose, the summary stays one short line.
run_ts 0 preprocess --input stray.tsv --format tsv --labels index0 --no-words --output many.h5 --max-classes 1048576
expect_in out "(1048576 classes); 1048573 class(es) with no row"
[ "$(wc -c < "$WORK/out")" -lt 2000 ] || fail "the summary of 1048576 classes is $(wc -c < "$WORK/out") bytes"

# --- a model too large for the memory it may use: the sizes, exit 1, nothing written -------------
status=0
( ulimit -v 4000000; exec "$TEXTSCALE_BIN" train --train nc.h5 --model crepe-small --features 60000 --fc 8 \
  --run-dir big-run ) > "$WORK/out" 2> "$WORK/err" || status=$?
[ "$status" = 1 ] || fail "a model larger than ulimit -v: exit $status, expected 1: $(cat "$WORK/err")"
expect_in "$WORK/err" "GiB, more than the"
expect_in "$WORK/err" "the address-space limit (ulimit -v) leaves"
expect_absent big-run
# Activations past the limit: the allocation that fails is reported, exit 1 (not an internal error).
status=0
( ulimit -v 4000000; exec "$TEXTSCALE_BIN" bench --model crepe-small --batch-size 20000 --warmup 0 --steps 1 \
  --threads 1 ) > "$WORK/out" 2> "$WORK/err" || status=$?
[ "$status" = 1 ] || fail "a batch larger than ulimit -v: exit $status, expected 1: $(cat "$WORK/err")"
expect_in "$WORK/err" "error: out of memory: an allocation was refused"

# --- line ends: LF, CRLF and lone CR (old Mac files) all end a row; a header must parse --------
printf '1\ta\r0\tb\r\n1\tc\n' > cr.tsv
run_ts 0 preprocess --input cr.tsv --format tsv --labels index0 --no-words --output cr.h5
expect_in out "wrote cr.h5: 3 rows"
printf 'label\t"text\n0\thello\n' > badheader.tsv
run_ts 1 preprocess --input badheader.tsv --format tsv --header --labels index0 --no-words --output x.h5
expect_in err "badheader.tsv:1: header: unterminated quote"

# --- a class list with a byte-order mark --------------------------------------------------------
printf '\xef\xbb\xbfneg\r\npos\r\n' > bom-classes.txt
printf 'neg\tbad\npos\tgood\n' > named.tsv
run_ts 0 preprocess --input named.tsv --format tsv --labels names --classes bom-classes.txt --no-words --output named.h5
expect_in out "wrote named.h5: 2 rows"

# --- a pipe read twice (the word pass counts words first): copied once, like standard input ----
mkfifo fifo.csv
(cat source.csv > fifo.csv &)
run_ts 0 preprocess --input fifo.csv --output fifo.h5
expect_in out "wrote fifo.h5: 2 rows"
no_leftovers "$WORK"

# --- IMDB folders: entries named *.txt that are not files are bad rows, never a hang -----------
mkdir -p imdb/neg imdb/pos imdb/pos/2_7.txt
echo "bad movie" > imdb/neg/0_1.txt
echo "good movie" > imdb/pos/1_9.txt
mkfifo imdb/pos/5_8.txt
status=0
timeout 60 "$TEXTSCALE_BIN" preprocess --input imdb --format imdb --output imdb.h5 >"$WORK/out" 2>"$WORK/err" || status=$?
[ "$status" = 0 ] || fail "IMDB folder with a FIFO and a folder named *.txt: exit $status: $(cat "$WORK/err")"
expect_in err "2_7.txt: unreadable file: not a regular file"
expect_in err "5_8.txt: unreadable file: not a regular file"
expect_in out "wrote imdb.h5: 2 rows"

# --- option values out of range are command-line errors (exit 2) naming the option ----------------
run_ts 2 preprocess --input source.csv --output x.h5 --validation-fraction nan
expect_in err "--validation-fraction must be in [0, 1)"
run_ts 2 preprocess --input source.csv --output x.h5 --max-row-bytes -1
expect_in err "--max-row-bytes must not be negative"
run_ts 2 preprocess --input source.csv --output x.h5 --char-length 2000000000
expect_in err "--char-length must be in 1.."
run_ts 2 preprocess --input source.csv --output x.h5 --threads 100000
expect_in err "--threads must be at most"
run_ts 2 preprocess --input huge.tsv --format tsv --labels index0 --label-column 2147483647 --output x.h5
expect_in err "--label-column must be in 0.."
run_ts 1 preprocess --input big.csv --output x.h5 --validation-fraction 0.00001
expect_in err "holds no row (raise --validation-fraction)"
expect_absent x.h5 x.valid.h5
no_leftovers "$WORK"

# Backend options: a value an option does not take is a command-line error (exit 2) naming it, in
# each command that has the option.
for bad in "--winograd maybe:--winograd must be on or off, not 'maybe'" \
  "--winograd-min-channels 0:--winograd-min-channels must be in 1..1048576, not 0" \
  "--onehot-fusion 2:--onehot-fusion must be on or off, not '2'" \
  "--cudnn-search fast:--cudnn-search must be heuristic or measure, not 'fast'" \
  "--bf16-conv half:--bf16-conv must be on or off, not 'half'" "--device tpu:--device must be auto, cpu or cuda" \
  "--backend mkl:--backend must be onednn or reference" "--precision fp16:--precision must be fp32, tf32 or bf16"; do
  read -r -a option <<< "${bad%%:*}"
  for command in "train --train none.h5" "bench" "evaluate --checkpoint none.h5 --data none.h5"; do
    read -r -a words <<< "$command"
    run_ts 2 "${words[@]}" "${option[@]}"
    expect_in err "${bad#*:}"
  done
done
run_ts 2 train --train none.h5 --mpi-progress-us -1
expect_in err "--mpi-progress-us must be in 0..10000000"
run_ts 2 train --train none.h5 --force-resume
expect_in err "--force-resume goes with --resume"

# --- inspect refuses a damaged file instead of reading outside it ------------------------------
run_ts 0 preprocess --input big.csv --output good.h5 --quiet
for damage in labels-2d char-length code num-classes word-length; do
  cp good.h5 "$damage.h5"
  py - "$damage" <<'PY'
import sys, h5py, numpy as np
damage = sys.argv[1]
f = h5py.File(damage + ".h5", "r+")
if damage == "labels-2d":
    del f["labels"]; f["labels"] = np.zeros((3000, 3), np.int32)
elif damage == "char-length":
    f["char_lengths"][0] = 100000
elif damage == "code":
    row = f["chars"][0]; row[0] = 250; f["chars"][0] = row
elif damage == "num-classes":
    f.attrs["num_classes"] = np.int64(10**15)
elif damage == "word-length":
    f["word_lengths"][0] = -4
PY
  run_ts 1 inspect "$damage.h5" --row 0
done
expect_in err "word-length.h5': dataset 'word_lengths' row 0 holds -4"
for pair in "labels-2d:dataset 'labels' has rank 2" "char-length:dataset 'char_lengths' row 0 holds 100000" \
  "code:holds code 250" "num-classes:attribute num_classes is 1000000000000000"; do
  run_ts 1 inspect "${pair%%:*}.h5" --row 0
  expect_in err "${pair#*:}"
done

finish
