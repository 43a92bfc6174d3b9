#!/usr/bin/env bash
# fastText baseline accuracies on AG News and IMDB, for comparison with textscale's models.
#
# Converts the raw datasets to fastText's `__label__<class> <text>` lines, trains
# `fasttext supervised` with default settings and again with `-wordNgrams 2`, scores each model
# with `fasttext test` on the test split, and prints a markdown table (dataset, setting,
# training/test rows, accuracy = share of test rows whose top prediction is their label).
#
#   AG News: train = ag_news/alps_train_sample/dev.tsv (10,001 rows, `description<TAB>classname`,
#            fields containing `"` CSV-quoted); test = ag_news/test.csv (7,600 rows, Zhang CSV
#            "class","title","description"; title + " " + description, the 1-based class mapped
#            to its name in classes.txt so both files use the same labels).
#   IMDB:    train = imdb/train.csv.gz, test = imdb/test.csv.gz (25,000 rows each, Zhang polarity
#            CSV "class","text", 1 = neg, 2 = pos).
#
# Text is normalised like fastText's classification example (classification-example.sh):
# lower-cased; `'` becomes ` ' `; `"` is dropped; `.` `,` `(` `)` `!` `?` are split off with
# spaces; `;` and `:` become spaces; `<br />` becomes a space; spaces are squeezed. AG News
# backslash line breaks (`\`, `\\`) become spaces and `\$` becomes `$`. Training lines are
# shuffled with a fixed seed (IMDB's files list all negatives first).
#
# fastText runs with -thread 1 (its own advice for reproducible results) unless --threads N.
#
# Usage: bench/fasttext_accuracy.sh [--data DIR] [--out DIR] [--threads N] [--keep-models]
#   --data DIR   data root holding ag_news/ and imdb/ (default: $TEXTSCALE_DATA, else
#                ../shared/data relative to the repository root)
#   --out DIR    where the converted files, models and results.md go (default: a new directory
#                under ${TMPDIR:-/tmp}); the .bin models (about 850 MB each with -wordNgrams 2)
#                are deleted after testing unless --keep-models
# Exits 77 (skipped) when neither dataset is present or the fasttext program is missing.
# Needs: fasttext (apt-get install -y fasttext) and /usr/bin/python3.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
data=${TEXTSCALE_DATA:-$root/../shared/data}
out=""
threads=1
keep_models=0
python=${PYTHON:-/usr/bin/python3}

while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --keep-models) keep_models=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

if ! command -v fasttext > /dev/null; then
  echo "skipped: the fasttext program is not installed (apt-get install -y fasttext)" >&2
  exit 77
fi

datasets=()
if [ -f "$data/ag_news/alps_train_sample/dev.tsv" ] && [ -f "$data/ag_news/test.csv" ] &&
   [ -f "$data/ag_news/classes.txt" ]; then
  datasets+=(ag_news)
else
  echo "note: AG News not found in '$data/ag_news' (needs alps_train_sample/dev.tsv, test.csv, classes.txt); skipping it" >&2
fi
if [ -f "$data/imdb/train.csv.gz" ] && [ -f "$data/imdb/test.csv.gz" ]; then
  datasets+=(imdb)
else
  echo "note: IMDB not found in '$data/imdb' (needs train.csv.gz, test.csv.gz); skipping it" >&2
fi
if [ ${#datasets[@]} -eq 0 ]; then
  echo "skipped: no data in '$data' (set --data or TEXTSCALE_DATA, or run: data/fetch.sh ag_news)" >&2
  exit 77
fi

if [ -z "$out" ]; then
  out=$(mktemp -d "${TMPDIR:-/tmp}/textscale-fasttext.XXXXXX")
fi
mkdir -p "$out"
echo "data: $data"
echo "outputs: $out"
echo "fastText: $(dpkg-query -W -f '${Version}' fasttext 2>/dev/null || echo unknown), -thread $threads"

# Writes $out/<dataset>.train and $out/<dataset>.test in fastText format.
convert() {
  "$python" - "$1" "$data" "$out" << 'EOF'
import csv
import gzip
import random
import re
import sys

dataset, data, out = sys.argv[1:4]
csv.field_size_limit(sys.maxsize)


def normalize(text):
    """fastText's classification-example normalisation (see the script's header)."""
    text = text.lower()
    text = text.replace("'", " ' ").replace('"', "")
    text = text.replace(".", " . ").replace("<br />", " ")
    for p in ",()!?":
        text = text.replace(p, f" {p} ")
    text = text.replace(";", " ").replace(":", " ")
    return " ".join(text.split())


def ag_text(text):
    """AG News line breaks: `\\$` is a dollar sign, other backslash runs separate words."""
    return re.sub(r"\\+", " ", text.replace("\\$", "$"))


def line(label, text):
    return f"__label__{label.replace(' ', '_')} {normalize(text)}\n"


if dataset == "ag_news":
    with open(f"{data}/ag_news/classes.txt", encoding="utf-8") as f:
        classes = [c.strip() for c in f if c.strip()]
    with open(f"{data}/ag_news/alps_train_sample/dev.tsv", encoding="utf-8", newline="") as f:
        train = [line(row[1], ag_text(row[0])) for row in csv.reader(f, delimiter="\t") if row]
    with open(f"{data}/ag_news/test.csv", encoding="utf-8", newline="") as f:
        test = [line(classes[int(row[0]) - 1], ag_text(" ".join(row[1:])))
                for row in csv.reader(f) if row]
    unknown = {l.split(" ", 1)[0] for l in train} - {f"__label__{c.replace(' ', '_')}" for c in classes}
    if unknown:
        sys.exit(f"error: training labels not in classes.txt: {sorted(unknown)}")
else:
    names = ["neg", "pos"]

    def read(path):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            return [line(names[int(row[0]) - 1], " ".join(row[1:])) for row in csv.reader(f) if row]

    train = read(f"{data}/imdb/train.csv.gz")
    test = read(f"{data}/imdb/test.csv.gz")

random.Random(1).shuffle(train)
for split, lines in (("train", train), ("test", test)):
    with open(f"{out}/{dataset}.{split}", "w", encoding="utf-8") as f:
        f.writelines(lines)
print(f"{dataset}: {len(train)} training lines, {len(test)} test lines")
EOF
}

results="$out/results.md"
{
  echo "| dataset | setting | train rows | test rows | accuracy |"
  echo "|---|---|---:|---:|---:|"
} > "$results"

for dataset in "${datasets[@]}"; do
  convert "$dataset"
  train_rows=$(wc -l < "$out/$dataset.train")
  for setting in default bigrams; do
    model="$out/$dataset.$setting"
    options=()
    label="default"
    if [ "$setting" = bigrams ]; then
      options=(-wordNgrams 2)
      label="-wordNgrams 2"
    fi
    echo "== $dataset, $label"
    fasttext supervised -input "$out/$dataset.train" -output "$model" -thread "$threads" \
      -verbose 1 "${options[@]}"
    fasttext test "$model.bin" "$out/$dataset.test" | tee "$model.test.txt"
    # `fasttext test` prints P@1 to 3 digits; count the exact accuracy from the predictions.
    fasttext predict "$model.bin" "$out/$dataset.test" > "$model.predictions"
    read -r test_rows accuracy < <(cut -d' ' -f1 "$out/$dataset.test" |
      paste -d' ' - "$model.predictions" |
      awk '{ n++; if ($1 == $2) ok++ } END { printf "%d %.2f%%\n", n, 100 * ok / n }')
    echo "| $dataset | $label | $train_rows | $test_rows | $accuracy |" >> "$results"
    if [ "$keep_models" -eq 0 ]; then
      rm -f "$model.bin" "$model.vec"
    fi
  done
done

echo
cat "$results"
