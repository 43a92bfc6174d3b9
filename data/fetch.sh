#!/usr/bin/env bash
# Download the public text-classification datasets, verify their checksums and unpack them into the
# default data folder shared by the textscale tools. Run `data/fetch.sh --help` for usage; the
# datasets, their sources and where each checksum comes from are described in data/README.md.
#
# Portable to bash 3.2 (macOS): no associative arrays, no mapfile.
set -euo pipefail

readonly PROG=fetch.sh
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_DIR

# ---------------------------------------------------------------------------------------------------
# The table: one line per downloaded file.
#   DATASET  KEY  KIND  URL  CHECK...
# KIND:  file       the download is the data file itself (kept as <dest>/<dataset>/<basename>)
#        zhang-tgz  tar.gz of Zhang et al.'s "<name>_csv/" folder; unpacked WITHOUT that folder, so
#                   <dest>/<dataset>/{train.csv,test.csv,readme.txt[,classes.txt]}
#        tgz        tar.gz unpacked as it is into <dest>/<dataset>/
#        zip        zip unpacked as it is into <dest>/<dataset>/
# CHECK: size:BYTES  md5:HEX  sha256:HEX      of the download; all must match (errors)
#        md5-1MiB:HEX                         md5 of the first 1 MiB (2**20 bytes) only: fast.ai's
#                                             check (fastai/data/external.py _check_file); error
#        unpacked-md5:FILE:HEX                md5 of an unpacked file; a mismatch is only a WARNING
#                                             (see the amazon/sogou notes below)
# Every checksum below was read from the public source named in the comment above its line; none
# was computed here. "HF" = huggingface/datasets datasets/<name>/dataset_infos.json
# (download_checksums: num_bytes + sha256); "TFDS" = tensorflow/datasets
# tensorflow_datasets/url_checksums/<name>.txt (size + sha256); "torchtext" = pytorch/text
# torchtext/datasets/<name>.py (MD5, _EXTRACTED_FILES_MD5); "fastai" = fastai/fastai
# fastai/data/checks.txt ([size, md5 of the first 1 MiB]).
#
# NOTE: torchtext downloads Zhang's eight sets from Google Drive (.tar.gz); the fast.ai S3 copies
# (.tgz) used here are different files (e.g. AG News: 11,784,327 bytes on Drive per TFDS
# ag_news_subset.txt, 11,784,419 on S3 per fastai), so torchtext's archive MD5s do NOT apply to them.
# ---------------------------------------------------------------------------------------------------
builtin_table() {
  cat <<'TABLE'
# AG News: URL, MD5 from torchtext ag_news.py; size + sha256 from HF ag_news (same URLs).
# (test.csv also = /work/shared/data/ag_news/test.csv of this project: md5 and sha256 both match.)
ag_news train file https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/train.csv size:29470338 md5:b1a00f826fdfbd249f79597b59e1dc12 sha256:76a0a2d2f92b286371fe4d4044640910a04a803fdd2538e0f3f29a5c6f6b672e
ag_news test file https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/test.csv size:1857427 md5:d52ea96a97a2d943681189a97654912d sha256:521465c2428ed7f02f8d6db6ffdd4b5447c1c701962353eb2c40d548c3c85699
# DBpedia: URL from fastai URLs.DBPEDIA; size + sha256 from HF dbpedia_14; size also = fastai checks.txt.
dbpedia archive zhang-tgz https://s3.amazonaws.com/fast-ai-nlp/dbpedia_csv.tgz size:68341743 sha256:42db5221ddedddb673a4cabcc5f3a7d869714c878bcfe4ba94b29d14aa38e417
# Yelp polarity: size + sha256 from TFDS yelp_polarity_reviews.txt and HF yelp_polarity (identical);
# size also = fastai checks.txt.
yelp_polarity archive zhang-tgz https://s3.amazonaws.com/fast-ai-nlp/yelp_review_polarity_csv.tgz size:166373201 sha256:528f22e286cad085948acbc3bea7e58188416546b0e364d0ae4ca0ce666abe35
# Yelp full: size + sha256 from HF yelp_review_full; size also = fastai checks.txt.
yelp_full archive zhang-tgz https://s3.amazonaws.com/fast-ai-nlp/yelp_review_full_csv.tgz size:196146755 sha256:56006b0a17a370f1e366504b1f2c3e3754e4a3dda17d3e718a885c552869a559
# Amazon polarity: size + sha256 from HF amazon_polarity; size also = fastai checks.txt.
# unpacked-md5: torchtext amazonreviewpolarity.py _EXTRACTED_FILES_MD5 (CSV files from its Google
# Drive archive; not proven identical to the S3 repack, hence a warning only).
amazon_polarity archive zhang-tgz https://s3.amazonaws.com/fast-ai-nlp/amazon_review_polarity_csv.tgz size:688339454 sha256:d2a3ee7a214497a5d1b8eaed7c8d7ba2737de00ada3b0ec46243983efa100361 unpacked-md5:train.csv:520937107c39a2d1d1f66cd410e9ed9e unpacked-md5:test.csv:f4c8bded2ecbde5f996b675db6228f16
# Amazon full: NO first-party full-file checksum was found. size + md5-1MiB from fastai checks.txt;
# md5 from a third-party loader (vaseline555/Federated-Learning-in-PyTorch
# src/datasets/torchtextparser.py, the same table whose yelp md5s agree with two other projects).
# unpacked-md5: torchtext amazonreviewfull.py _EXTRACTED_FILES_MD5 (warning only, see above).
amazon_full archive zhang-tgz https://s3.amazonaws.com/fast-ai-nlp/amazon_review_full_csv.tgz size:643695014 md5-1MiB:4a1196cf0adaea22f4bc3f592cddde90 md5:289723722b64d337a40f809edd29d0f0 unpacked-md5:train.csv:31b268b09fd794e0ca5a1f59a0358677 unpacked-md5:test.csv:0f1e78ab60f625f2a30eab6810ef987c
# Yahoo! Answers: size + sha256 from HF yahoo_answers_topics; size also = fastai checks.txt.
yahoo_answers archive zhang-tgz https://s3.amazonaws.com/fast-ai-nlp/yahoo_answers_csv.tgz size:319476345 sha256:2d4277855faf8b35259009425fa8f7fe1888b5644b47165508942d000f4c96ae
# Sogou News: size + sha256 from HF sogou_news; size also = fastai checks.txt.
# unpacked-md5: torchtext sogounews.py _EXTRACTED_FILES_MD5 (warning only, see above).
sogou_news archive zhang-tgz https://s3.amazonaws.com/fast-ai-nlp/sogou_news_csv.tgz size:384269937 sha256:6b77fc935561d339b82aa552d7e31ea59eff492a494920579b3ce70604efb5c2 unpacked-md5:train.csv:f36156164e6eac2feda0e30ad857eef0 unpacked-md5:test.csv:59e493c41cee050329446d8c45615b38
# IMDB (aclImdb v1): MD5 from torchtext imdb.py; size + sha256 from TFDS imdb_reviews.txt (both
# list the http:// form of this URL; same file).
imdb archive tgz https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz size:84125825 md5:7c2ac02c03563afcf9b574c7e56c153a sha256:c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe
# SST-2 (GLUE): URL, MD5 from torchtext sst2.py; size + sha256 from HF glue (sst2, same URL); TFDS
# glue.txt lists the same size + sha256 for GLUE's older firebase URL of SST-2.zip.
sst2 archive zip https://dl.fbaipublicfiles.com/glue/data/SST-2.zip size:7439277 md5:9f81648d4199384278b86e315dac217c sha256:d67e16fb55739c1b32cdce9877596db1c127dc322d93c082281f64057c16deaa
TABLE
}

usage() {
  cat <<EOF
Usage: data/fetch.sh [--dest DIR] [--mirror URL_BASE] DATASET[:FILE]...
       data/fetch.sh --list | --help

Download public text-classification datasets, verify every download against pinned
checksums, and unpack archives into DEST/<dataset>/.

Datasets:
  ag_news          AG News (Zhang et al. 2015), train.csv + test.csv        FILE: train, test
  dbpedia          DBpedia ontology, 14 classes (Zhang)                     -> DEST/dbpedia/
  yelp_polarity    Yelp review polarity, 2 classes (Zhang)                  -> DEST/yelp_polarity/
  yelp_full        Yelp review full, 5 stars (Zhang)                        -> DEST/yelp_full/
  amazon_polarity  Amazon review polarity, 2 classes (Zhang)                -> DEST/amazon_polarity/
  amazon_full      Amazon review full, 5 stars (Zhang)                      -> DEST/amazon_full/
  yahoo_answers    Yahoo! Answers topics, 10 classes (Zhang)                -> DEST/yahoo_answers/
  sogou_news       Sogou News (pinyin), 5 classes (Zhang)                   -> DEST/sogou_news/
  imdb             IMDB Large Movie Review v1.0 (Maas et al.)               -> DEST/imdb/aclImdb/
  sst2             SST-2 as distributed by GLUE (test split unlabelled)    -> DEST/sst2/SST-2/
  all              every dataset above (about 2.6 GB of downloads)
  DATASET:FILE fetches only that file of a dataset, e.g. ag_news:test. Zhang's CSV archives
  are unpacked without their top folder (DEST/<dataset>/train.csv, test.csv, classes.txt, ...).
  The downloaded file is kept beside them (DEST/<dataset>/<basename of URL>).

Options:
  --dest DIR          Where to put the data. Default: \$TEXTSCALE_DATA if set, else
                      <repo>/../shared/data -- the same default data folder the tests use
                      (tests/CMakeLists.txt, TEXTSCALE_DATA) (here: $(default_dest)).
  --mirror URL_BASE   Fetch from a mirror instead of the public sources (default:
                      \$TEXTSCALE_DATA_MIRROR if set). The whole public URL is replaced by
                          URL_BASE/<dataset>/<basename of the public URL>
                      e.g. --mirror file:///srv/mirror fetches ag_news:test from
                      file:///srv/mirror/ag_news/test.csv and imdb from
                      file:///srv/mirror/imdb/aclImdb_v1.tar.gz. Any URL curl can read works
                      (https://, file://); an absolute directory path is taken as file://.
                      Mirrored files are verified against the same checksums.
  --list              Print the dataset table (dataset, file, public URL, checks) and exit.
  -h, --help          Show this help and exit.

Behaviour:
  A file already present under its final name is verified and, if it matches, neither
  downloaded nor unpacked again (a stamp DEST/<dataset>/.<basename>.unpacked records the
  unpacking). A present file that does not match is downloaded again. Downloads go to a
  temporary name in the same folder (.<basename>.part.XXXXXX) and are renamed only after every
  check passed; archives are unpacked into a temporary folder and then moved into place.
  Requires curl, tar and gzip; unzip (or python3) for sst2; md5sum/sha256sum (or md5/shasum or
  openssl). Exit status: 0 success, 1 download/verification/unpack failure, 2 usage error.
  The sources of every URL and checksum are listed in data/README.md and in this script.

Testing hook: TEXTSCALE_FETCH_TABLE=FILE replaces the built-in table by FILE (same format:
  'DATASET KEY KIND URL CHECK...' per line, see the comments in this script).
EOF
}

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s\n(see %s --help)\n' "$PROG" "$*" "$PROG" >&2; exit 2; }
have() { command -v "$1" >/dev/null 2>&1; }
default_dest() { # $TEXTSCALE_DATA, else <repo>/../shared/data
  if [ -n "${TEXTSCALE_DATA:-}" ]; then printf '%s\n' "$TEXTSCALE_DATA"
  else printf '%s/shared/data\n' "$(cd "$REPO_DIR/.." && pwd)"; fi
}

# --- temporary files, removed on any exit ------------------------------------------------------
TMP_PATHS=()
cleanup() {
  local p
  for p in ${TMP_PATHS[@]+"${TMP_PATHS[@]}"}; do
    [ -n "$p" ] && rm -rf -- "$p"
  done
  TMP_PATHS=()
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# --- hashing (GNU coreutils, BSD/macOS, or openssl) ----------------------------------------------
md5_stdin() {
  if have md5sum; then md5sum | awk '{print $1}'
  elif have md5; then md5 -q
  elif have openssl; then openssl dgst -md5 -r | awk '{print $1}'
  else die "no md5 tool found (need md5sum, md5 or openssl)"; fi
}
sha256_stdin() {
  if have sha256sum; then sha256sum | awk '{print $1}'
  elif have shasum; then shasum -a 256 | awk '{print $1}'
  elif have openssl; then openssl dgst -sha256 -r | awk '{print $1}'
  else die "no sha256 tool found (need sha256sum, shasum or openssl)"; fi
}
actual_value() { # ALGO FILE
  case $1 in
    size) wc -c <"$2" | tr -d ' ' ;;
    md5) md5_stdin <"$2" ;;
    sha256) sha256_stdin <"$2" ;;
    md5-1MiB) head -c 1048576 <"$2" | md5_stdin ;;
    *) die "unknown check '$1' in the dataset table" ;;
  esac
}

# check_file FILE CHECKS: prints one line per failed check ("sha256: expected X, actual Y") and
# returns 1 if any failed. Cheap checks first; stops at the first failure of size.
check_file() {
  local file=$1 checks=$2 token algo want got failed=0
  for token in $checks; do
    algo=${token%%:*}
    want=${token#*:}
    case $algo in unpacked-*) continue ;; esac
    got=$(actual_value "$algo" "$file")
    if [ "$got" != "$want" ]; then
      printf '%s: expected %s, actual %s\n' "$algo" "$want" "$got"
      failed=1
      [ "$algo" = size ] && break
    fi
  done
  return $failed
}
summary_of() { # the checks verified, for messages
  local token out=
  for token in $1; do
    case ${token%%:*} in unpacked-*) ;; *) out="$out${out:+, }${token%%:*}" ;; esac
  done
  printf '%s\n' "$out"
}

# --- the table ---------------------------------------------------------------------------------
T_DS=() T_KEY=() T_KIND=() T_URL=() T_CHECKS=()
load_table() {
  local text ds key kind url checks n=0
  if [ -n "${TEXTSCALE_FETCH_TABLE:-}" ]; then
    [ -r "$TEXTSCALE_FETCH_TABLE" ] || die "TEXTSCALE_FETCH_TABLE=$TEXTSCALE_FETCH_TABLE is not readable"
    text=$(cat -- "$TEXTSCALE_FETCH_TABLE")
  else
    text=$(builtin_table)
  fi
  while read -r ds key kind url checks; do
    case $ds in '' | '#'*) continue ;; esac
    [ -n "$url" ] || die "bad table line for '$ds $key': no URL"
    case $kind in file | zhang-tgz | tgz | zip) ;; *) die "bad table line for '$ds $key': kind '$kind'" ;; esac
    T_DS[n]=$ds T_KEY[n]=$key T_KIND[n]=$kind T_URL[n]=$url T_CHECKS[n]=$checks
    n=$((n + 1))
  done <<<"$text"
}
dataset_names() { # unique, in table order
  local i seen=' '
  for i in "${!T_DS[@]}"; do
    case $seen in *" ${T_DS[i]} "*) ;; *) seen="$seen${T_DS[i]} "; printf '%s\n' "${T_DS[i]}" ;; esac
  done
}
keys_of() {
  local i out=
  for i in "${!T_DS[@]}"; do [ "${T_DS[i]}" = "$1" ] && out="$out${out:+, }${T_KEY[i]}"; done
  printf '%s\n' "$out"
}

# --- download + verify one file ----------------------------------------------------------------
source_url() { # DATASET URL
  if [ -n "$MIRROR" ]; then printf '%s/%s/%s\n' "${MIRROR%/}" "$1" "${2##*/}"; else printf '%s\n' "$2"; fi
}

curl_download() { # URL OUT
  local progress=(--silent --show-error)
  [ -t 2 ] && progress=(--progress-bar)
  curl --fail --location --retry 5 --retry-delay 3 --retry-connrefused --connect-timeout 30 \
    "${progress[@]}" --output "$2" "$1"
}

# fetch_entry INDEX: makes DEST/<dataset>/<basename> present and verified. Sets FETCHED=1 if it
# was downloaded now.
FETCHED=0
fetch_entry() {
  local i=$1
  local ds=${T_DS[i]} url=${T_URL[i]} checks=${T_CHECKS[i]}
  local base=${url##*/}
  local dir=$DEST/$ds
  local final=$dir/$base
  local src mism tmp rc mode
  FETCHED=0
  if [ -f "$final" ]; then
    if mism=$(check_file "$final" "$checks"); then
      log "$ds/$base: already present and verified ($(summary_of "$checks")); not downloading"
      return 0
    fi
    warn "$final is present but does not match ($(printf '%s' "$mism" | tr '\n' ';')); downloading it again"
  fi
  src=$(source_url "$ds" "$url")
  have curl || die "curl is required to download $src"
  mkdir -p -- "$dir" || die "cannot create $dir"
  tmp=$(mktemp "$dir/.$base.part.XXXXXX") || die "cannot create a temporary file in $dir"
  TMP_PATHS+=("$tmp")
  log "$ds/$base: downloading $src"
  rc=0
  curl_download "$src" "$tmp" || rc=$?
  [ "$rc" -eq 0 ] || die "download of $ds/$base failed (curl exit $rc): $src"
  if ! mism=$(check_file "$tmp" "$checks"); then
    die "checksum mismatch for $final (downloaded from $src); nothing was written under that name:
$(printf '%s\n' "$mism" | sed 's/^/    /')"
  fi
  mode=$(printf '%o' $((0666 & ~0$(umask))))
  chmod "$mode" "$tmp"
  mv -f -- "$tmp" "$final"
  log "$ds/$base: verified ($(summary_of "$checks")) -> $final"
  FETCHED=1
}

# --- unpack one archive ------------------------------------------------------------------------
unzip_to() { # ZIP DIR
  if have unzip; then unzip -q -o "$1" -d "$2"
  elif have python3; then python3 -m zipfile -e "$1" "$2"
  elif have bsdtar; then bsdtar -xf "$1" -C "$2"
  else die "cannot unpack $1: need unzip, python3 or bsdtar"; fi
}

unpack_entry() {
  local i=$1
  local ds=${T_DS[i]} kind=${T_KIND[i]} url=${T_URL[i]} checks=${T_CHECKS[i]}
  local base=${url##*/}
  local dir=$DEST/$ds
  local archive=$dir/$base stamp=$dir/.$base.unpacked
  local tmpd srcdir entry name names='' complete token rest file want got
  if [ "$FETCHED" = 0 ] && [ -f "$stamp" ] && [ "$(sed -n 1p "$stamp")" = "$checks" ]; then
    complete=1
    while read -r name; do
      [ -n "$name" ] && [ ! -e "$dir/$name" ] && complete=0
    done < <(sed 1d "$stamp")
    if [ "$complete" = 1 ]; then
      log "$ds/$base: already unpacked in $dir; not unpacking"
      return 0
    fi
  fi
  tmpd=$(mktemp -d "$dir/.unpack.XXXXXX") || die "cannot create a temporary folder in $dir"
  TMP_PATHS+=("$tmpd")
  log "$ds/$base: unpacking into $dir"
  case $kind in
    zhang-tgz | tgz) tar --no-same-owner -xzf "$archive" -C "$tmpd" || die "cannot unpack $archive" ;;
    zip) unzip_to "$archive" "$tmpd" || die "cannot unpack $archive" ;;
  esac
  srcdir=$tmpd
  if [ "$kind" = zhang-tgz ]; then
    # Zhang's archives hold one folder (<name>_csv/); its files go straight into DEST/<dataset>/.
    srcdir=$(find "$tmpd" -maxdepth 3 -type f -name train.csv | sed -n 1p)
    srcdir=${srcdir%/train.csv}
    if [ -z "$srcdir" ] || [ ! -f "$srcdir/test.csv" ]; then
      die "unexpected layout in $archive: no <folder>/train.csv and <folder>/test.csv"
    fi
  fi
  # Warning-only checks of unpacked files.
  for token in $checks; do
    case $token in unpacked-md5:*) ;; *) continue ;; esac
    rest=${token#unpacked-md5:}
    file=${rest%%:*} want=${rest#*:}
    if [ ! -f "$srcdir/$file" ]; then
      warn "$ds: $file not found in $base (cannot cross-check its md5 $want)"
    elif got=$(md5_stdin <"$srcdir/$file") && [ "$got" != "$want" ]; then
      warn "$ds/$file: md5 $got differs from the $want that torchtext pins for its Google Drive copy of this data (the download itself is verified; the S3 copy may have been repacked)"
    else
      log "$ds/$file: md5 matches the pinned $want"
    fi
  done
  # Move the unpacked top-level entries into place, replacing older copies.
  while IFS= read -r entry; do
    name=${entry##*/}
    case $name in "$base" | ".$base.unpacked" | .unpack.* | .*.part.*)
      die "$archive contains '$name', which would replace fetch.sh's own files" ;;
    esac
    rm -rf -- "${dir:?}/$name"
    mv -- "$entry" "$dir/$name"
    names="$names$name
"
  done < <(find "$srcdir" -mindepth 1 -maxdepth 1)
  printf '%s\n%s' "$checks" "$names" >"$stamp"
  rm -rf -- "$tmpd"
  log "$ds/$base: unpacked: $(printf '%s' "$names" | tr '\n' ' ')"
}

# --- main --------------------------------------------------------------------------------------
main() {
  local dest_opt='' mirror_opt='' list=0 args=() arg
  while [ $# -gt 0 ]; do
    case $1 in
      -h | --help) usage; exit 0 ;;
      --list) list=1 ;;
      --dest) [ $# -ge 2 ] || usage_error "--dest needs a directory"; dest_opt=$2; shift ;;
      --dest=*) dest_opt=${1#--dest=} ;;
      --mirror) [ $# -ge 2 ] || usage_error "--mirror needs a URL base"; mirror_opt=$2; shift ;;
      --mirror=*) mirror_opt=${1#--mirror=} ;;
      --) shift; args+=("$@"); break ;;
      -*) usage_error "unknown option: $1" ;;
      *) args+=("$1") ;;
    esac
    shift
  done

  load_table
  if [ "$list" = 1 ]; then
    local i
    for i in "${!T_DS[@]}"; do
      printf '%s:%s\t%s\t%s\n' "${T_DS[i]}" "${T_KEY[i]}" "${T_URL[i]}" "${T_CHECKS[i]}"
    done
    exit 0
  fi
  [ ${#args[@]} -gt 0 ] || usage_error "no dataset given"

  DEST=${dest_opt:-$(default_dest)}
  [ -n "$DEST" ] || usage_error "empty --dest"
  MIRROR=${mirror_opt:-${TEXTSCALE_DATA_MIRROR:-}}
  case $MIRROR in
    '' | *://*) ;;
    *) [ -d "$MIRROR" ] || usage_error "--mirror: '$MIRROR' is neither a URL nor a directory"
      MIRROR=file://$(cd "$MIRROR" && pwd) ;;
  esac

  # Resolve DATASET[:FILE] arguments to table rows (validated before anything is downloaded).
  local sel=() ds key i found known
  known=$(dataset_names | tr '\n' ' ')
  for arg in "${args[@]}"; do
    if [ "$arg" = all ]; then
      for i in "${!T_DS[@]}"; do sel+=("$i"); done
      continue
    fi
    ds=${arg%%:*} key=
    case $arg in *:*) key=${arg#*:} ;; esac
    found=0
    for i in "${!T_DS[@]}"; do
      if [ "${T_DS[i]}" = "$ds" ] && { [ -z "$key" ] || [ "${T_KEY[i]}" = "$key" ]; }; then
        sel+=("$i")
        found=1
      fi
    done
    if [ "$found" = 0 ]; then
      case " $known " in
        *" $ds "*) usage_error "dataset $ds has no file '$key' (files: $(keys_of "$ds"))" ;;
        *) usage_error "unknown dataset '$ds' (known: ${known}all)" ;;
      esac
    fi
  done

  log "destination: $DEST${MIRROR:+ (mirror: $MIRROR)}"
  for i in "${sel[@]}"; do
    fetch_entry "$i"
    [ "${T_KIND[i]}" = file ] || unpack_entry "$i"
  done
  log "done"
}

DEST=
MIRROR=
main "$@"
