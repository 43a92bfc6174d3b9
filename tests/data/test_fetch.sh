#!/usr/bin/env bash
# Offline test of data/fetch.sh: builds a file:// mirror from the real AG News test split in the data
# folder ($TEXTSCALE_DATA, default $TEXTSCALE_SOURCE_DIR/../shared/data) and checks download +
# verification, skipping of verified files, refusal of corrupted or missing files (nothing left
# under the final name), and unpacking of archives (through the TEXTSCALE_FETCH_TABLE test hook).
# Exit 0: pass, 1: fail, 77: skipped (no data folder / no curl).
set -euo pipefail

src_dir=${TEXTSCALE_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
data_dir=${TEXTSCALE_DATA:-$src_dir/../shared/data}
fetch=$src_dir/data/fetch.sh
ag_test=$data_dir/ag_news/test.csv
# Pinned by torchtext (md5) and huggingface/datasets (sha256) for AG News test.csv.
ag_md5=d52ea96a97a2d943681189a97654912d
ag_sha256=521465c2428ed7f02f8d6db6ffdd4b5447c1c701962353eb2c40d548c3c85699

if [ ! -f "$ag_test" ]; then
  echo "SKIP: $ag_test not found (set TEXTSCALE_DATA to the data folder holding ag_news/test.csv)"
  exit 77
fi
if ! command -v curl >/dev/null 2>&1; then
  echo "SKIP: curl is not installed (data/fetch.sh needs it)"
  exit 77
fi
[ -f "$fetch" ] || { echo "FAIL: $fetch not found (set TEXTSCALE_SOURCE_DIR)"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_fetch.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT

failures=0
pass() { echo "ok   - $*"; }
fail() { echo "FAIL - $*"; failures=$((failures + 1)); }
md5_of() { md5sum <"$1" | awk '{print $1}'; }
sha256_of() { sha256sum <"$1" | awk '{print $1}'; }
# run NAME ARGS...: runs fetch.sh with stdout+stderr in $tmp/NAME.log, status in $rc.
# Environment variables that fetch.sh reads are cleared unless the caller sets them for `run`.
run() {
  local name=$1
  shift
  rc=0
  env -u TEXTSCALE_DATA_MIRROR -u TEXTSCALE_FETCH_TABLE ${RUN_ENV[@]+"${RUN_ENV[@]}"} \
    bash "$fetch" "$@" >"$tmp/$name.log" 2>&1 || rc=$?
}
show() { sed 's/^/       | /' "$tmp/$1.log"; }
no_leftovers() { # DIR: no temporary download/unpack files
  [ -z "$(find "$1" -name '.*.part.*' -o -name '.unpack.*' 2>/dev/null)" ]
}
RUN_ENV=()

# --- 1. usage ----------------------------------------------------------------------------------
run help --help
if [ "$rc" = 0 ] && grep -q -- '--mirror URL_BASE' "$tmp/help.log" && grep -q 'TEXTSCALE_DATA' "$tmp/help.log"; then
  pass "--help documents --mirror and TEXTSCALE_DATA"
else fail "--help (rc=$rc)"; show help; fi

run unknown --dest "$tmp/unused" no_such_dataset
if [ "$rc" = 2 ] && grep -q "unknown dataset 'no_such_dataset'" "$tmp/unknown.log"; then
  pass "unknown dataset is a usage error (exit 2)"
else fail "unknown dataset: rc=$rc"; show unknown; fi
[ ! -e "$tmp/unused" ] || fail "a usage error created the destination folder"

# --- 2. good mirror: download + verify -------------------------------------------------------------
mkdir -p "$tmp/mirror/ag_news"
cp "$ag_test" "$tmp/mirror/ag_news/test.csv"
dest=$tmp/dest
run fetch1 --dest "$dest" --mirror "file://$tmp/mirror" ag_news:test
out=$dest/ag_news/test.csv
if [ "$rc" = 0 ] && [ -f "$out" ] && [ "$(md5_of "$out")" = "$ag_md5" ] && [ "$(sha256_of "$out")" = "$ag_sha256" ]; then
  pass "ag_news:test fetched from a file:// mirror with the pinned md5 and sha256"
else fail "fetch ag_news:test (rc=$rc)"; show fetch1; fi
[ ! -e "$dest/ag_news/train.csv" ] || fail "ag_news:test also fetched train.csv"
if no_leftovers "$dest"; then pass "no temporary files left after a download"; else fail "temporary files left in $dest"; fi

# --- 3. second run skips the verified file (the mirror file is gone: a download would fail) ----
mv "$tmp/mirror/ag_news/test.csv" "$tmp/test.csv.saved"
before=$(ls -li "$out")
run fetch2 --dest "$dest" --mirror "file://$tmp/mirror" ag_news:test
if [ "$rc" = 0 ] && grep -q 'already present and verified' "$tmp/fetch2.log" && [ "$(ls -li "$out")" = "$before" ]; then
  pass "second run skips the already present, verified file"
else fail "second run (rc=$rc)"; show fetch2; fi
mv "$tmp/test.csv.saved" "$tmp/mirror/ag_news/test.csv"

# --- 4. env: TEXTSCALE_DATA is the default destination, TEXTSCALE_DATA_MIRROR the default mirror
RUN_ENV=(TEXTSCALE_DATA="$tmp/envdest" TEXTSCALE_DATA_MIRROR="file://$tmp/mirror")
run fetchenv ag_news:test
RUN_ENV=()
if [ "$rc" = 0 ] && [ "$(md5_of "$tmp/envdest/ag_news/test.csv" 2>/dev/null)" = "$ag_md5" ]; then
  pass "TEXTSCALE_DATA and TEXTSCALE_DATA_MIRROR give the default destination and mirror"
else fail "env defaults (rc=$rc)"; show fetchenv; fi

# --- 5. a present file with the wrong content is replaced ----------------------------------------
mkdir -p "$tmp/stale/ag_news"
echo "not the AG News test split" >"$tmp/stale/ag_news/test.csv"
run stale --dest "$tmp/stale" --mirror "$tmp/mirror" ag_news:test
if [ "$rc" = 0 ] && [ "$(md5_of "$tmp/stale/ag_news/test.csv")" = "$ag_md5" ] && grep -q 'does not match' "$tmp/stale.log"; then
  pass "a present but wrong file is downloaded again (mirror given as a plain directory)"
else fail "stale file (rc=$rc)"; show stale; fi

# --- 6. corrupted mirror file: non-zero exit, message names the file, nothing under the final name
mkdir -p "$tmp/badmirror/ag_news"
cp "$ag_test" "$tmp/badmirror/ag_news/test.csv"
chmod u+w "$tmp/badmirror/ag_news/test.csv"
printf 'X' | dd of="$tmp/badmirror/ag_news/test.csv" bs=1 seek=1000 conv=notrunc 2>/dev/null # same size
bad_md5=$(md5_of "$tmp/badmirror/ag_news/test.csv")
run corrupt --dest "$tmp/baddest" --mirror "file://$tmp/badmirror" ag_news:test
if [ "$rc" != 0 ] && grep -q 'checksum mismatch' "$tmp/corrupt.log" && grep -q 'ag_news/test.csv' "$tmp/corrupt.log" &&
  grep -q "expected $ag_md5, actual $bad_md5" "$tmp/corrupt.log"; then
  pass "corrupted mirror file fails (rc=$rc) naming the file, expected and actual md5"
else fail "corrupted mirror file (rc=$rc)"; show corrupt; fi
if [ ! -e "$tmp/baddest/ag_news/test.csv" ] && no_leftovers "$tmp/baddest"; then
  pass "nothing left under the final name (nor temporary files) after a mismatch"
else fail "files left after a mismatch: $(find "$tmp/baddest" -type f)"; fi

# --- 7. missing mirror file: non-zero exit, nothing left -----------------------------------------
run missing --dest "$tmp/missdest" --mirror "file://$tmp/mirror" ag_news:train
if [ "$rc" != 0 ] && grep -q 'download of ag_news/train.csv failed' "$tmp/missing.log" &&
  [ ! -e "$tmp/missdest/ag_news/train.csv" ] && no_leftovers "$tmp/missdest"; then
  pass "missing mirror file fails (rc=$rc) and leaves nothing"
else fail "missing mirror file (rc=$rc)"; show missing; fi

# --- 8. real table, archive entry: a repacked IMDB archive is refused before unpacking -----------
if [ -f "$data_dir/imdb/aclImdb_labelled.tar.gz" ]; then
  mkdir -p "$tmp/mirror/imdb"
  ln -s "$data_dir/imdb/aclImdb_labelled.tar.gz" "$tmp/mirror/imdb/aclImdb_v1.tar.gz"
  run imdb --dest "$tmp/imdbdest" --mirror "file://$tmp/mirror" imdb
  if [ "$rc" != 0 ] && grep -q 'checksum mismatch for .*imdb/aclImdb_v1.tar.gz' "$tmp/imdb.log" &&
    grep -q 'size: expected 84125825' "$tmp/imdb.log" && [ -z "$(ls -A "$tmp/imdbdest/imdb")" ]; then
    pass "imdb: an archive that is not aclImdb_v1.tar.gz is refused and nothing is unpacked"
  else fail "imdb mismatch (rc=$rc)"; show imdb; ls -la "$tmp/imdbdest/imdb" || true; fi
else
  echo "skip - imdb archive check ($data_dir/imdb/aclImdb_labelled.tar.gz not present)"
fi

# --- 9. unpacking, through the TEXTSCALE_FETCH_TABLE test hook -----------------------------------
# A small Zhang-style archive (toy_csv/{train,test,classes}.csv) made from the AG test split, and a
# plain tgz with a top folder kept as it is.
mkdir -p "$tmp/build/toy_csv" "$tmp/build/toydir" "$tmp/mirror/toy" "$tmp/mirror/plain"
head -n 100 "$ag_test" >"$tmp/build/toy_csv/train.csv"
tail -n 50 "$ag_test" >"$tmp/build/toy_csv/test.csv"
printf 'World\nSports\nBusiness\nSci/Tech\n' >"$tmp/build/toy_csv/classes.txt"
echo "hello" >"$tmp/build/toydir/file.txt"
tar -czf "$tmp/mirror/toy/toy_csv.tgz" -C "$tmp/build" toy_csv
tar -czf "$tmp/mirror/plain/plain.tar.gz" -C "$tmp/build" toydir
toy=$tmp/mirror/toy/toy_csv.tgz plain=$tmp/mirror/plain/plain.tar.gz
train_md5=$(md5_of "$tmp/build/toy_csv/train.csv")
cat >"$tmp/table" <<EOF
# test table
toy archive zhang-tgz https://example.invalid/somewhere/toy_csv.tgz size:$(wc -c <"$toy" | tr -d ' ') sha256:$(sha256_of "$toy") unpacked-md5:train.csv:$train_md5 unpacked-md5:test.csv:00000000000000000000000000000000
plain archive tgz https://example.invalid/x/plain.tar.gz md5:$(md5_of "$plain")
wrongcsv archive zhang-tgz https://example.invalid/x/plain.tar.gz md5:$(md5_of "$plain")
EOF
mkdir -p "$tmp/mirror/wrongcsv" && cp "$plain" "$tmp/mirror/wrongcsv/plain.tar.gz"
RUN_ENV=(TEXTSCALE_FETCH_TABLE="$tmp/table")
udest=$tmp/udest
run unpack1 --dest "$udest" --mirror "file://$tmp/mirror" toy plain
if [ "$rc" = 0 ] && cmp -s "$udest/toy/train.csv" "$tmp/build/toy_csv/train.csv" &&
  cmp -s "$udest/toy/test.csv" "$tmp/build/toy_csv/test.csv" && [ -f "$udest/toy/classes.txt" ] &&
  [ -f "$udest/toy/toy_csv.tgz" ] && [ ! -e "$udest/toy/toy_csv" ] &&
  [ "$(cat "$udest/plain/toydir/file.txt" 2>/dev/null)" = hello ] &&
  grep -q "toy/train.csv: md5 matches the pinned $train_md5" "$tmp/unpack1.log" &&
  grep -q "warning: toy/test.csv: md5 .* differs from the 00000000000000000000000000000000" "$tmp/unpack1.log" &&
  no_leftovers "$udest"; then
  pass "zhang-tgz unpacked without its top folder, tgz as it is; unpacked md5s cross-checked (mismatch only warns)"
else fail "unpacking (rc=$rc)"; show unpack1; find "$udest" | sed 's/^/       | /'; fi

mv "$toy" "$tmp/toy.saved"
run unpack2 --dest "$udest" --mirror "file://$tmp/mirror" toy
if [ "$rc" = 0 ] && grep -q 'toy/toy_csv.tgz: already present and verified' "$tmp/unpack2.log" &&
  grep -q 'already unpacked' "$tmp/unpack2.log"; then
  pass "second run neither downloads nor unpacks a verified, unpacked archive"
else fail "second unpack run (rc=$rc)"; show unpack2; fi
rm "$udest/toy/test.csv"
run unpack3 --dest "$udest" --mirror "file://$tmp/mirror" toy
if [ "$rc" = 0 ] && [ -f "$udest/toy/test.csv" ] && ! grep -q ': downloading ' "$tmp/unpack3.log"; then
  pass "an unpacked file that went missing is restored from the kept archive"
else fail "re-unpack (rc=$rc)"; show unpack3; fi
mv "$tmp/toy.saved" "$toy"

printf 'X' | dd of="$toy" bs=1 seek=20 conv=notrunc 2>/dev/null
run unpackbad --dest "$tmp/ubad" --mirror "file://$tmp/mirror" toy
if [ "$rc" != 0 ] && grep -q 'checksum mismatch for .*toy/toy_csv.tgz' "$tmp/unpackbad.log" &&
  [ -z "$(ls -A "$tmp/ubad/toy")" ]; then
  pass "corrupted archive fails and nothing is unpacked or kept"
else fail "corrupted archive (rc=$rc)"; show unpackbad; fi

run wrongcsv --dest "$tmp/uwrong" --mirror "file://$tmp/mirror" wrongcsv
if [ "$rc" != 0 ] && grep -q 'unexpected layout' "$tmp/wrongcsv.log" && [ ! -e "$tmp/uwrong/wrongcsv/toydir" ] &&
  no_leftovers "$tmp/uwrong"; then
  pass "a zhang-tgz without <folder>/train.csv is an error and nothing is unpacked"
else fail "wrong layout (rc=$rc)"; show wrongcsv; fi

# zip (as sst2): unpacked as it is; built with python3's zipfile when available.
if command -v python3 >/dev/null 2>&1; then
  mkdir -p "$tmp/mirror/zipped" "$tmp/build/ZIPDIR"
  cp "$tmp/build/toy_csv/test.csv" "$tmp/build/ZIPDIR/dev.tsv"
  (cd "$tmp/build" && python3 -m zipfile -c "$tmp/mirror/zipped/Z.zip" ZIPDIR)
  echo "zipped archive zip https://example.invalid/glue/Z.zip sha256:$(sha256_of "$tmp/mirror/zipped/Z.zip")" >>"$tmp/table"
  run zip --dest "$udest" --mirror "file://$tmp/mirror" zipped
  if [ "$rc" = 0 ] && cmp -s "$udest/zipped/ZIPDIR/dev.tsv" "$tmp/build/toy_csv/test.csv" && no_leftovers "$udest"; then
    pass "zip archive unpacked as it is"
  else fail "zip (rc=$rc)"; show zip; fi
else
  echo "skip - zip check (python3 not available to build a zip)"
fi
RUN_ENV=()

if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all data/fetch.sh checks passed"
