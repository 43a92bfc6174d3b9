#!/usr/bin/env bash
# Every numeric option of every command refuses a value outside its range the same way: exit
# status 2 and a message naming the option, before any file is read or written. The options are
# read from each command's --help, so an option added later is checked too.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
none=$WORK/none
# Each command with arguments that fail (exit 1: a missing file) or succeed once its options pass.
declare -A base=(
  [preprocess]="--input $none.csv --output $WORK/made/p.h5"
  [train]="--train $none.h5 --run-dir $WORK/made/run"
  [evaluate]="--checkpoint $none.h5 --data $none.h5"
  [predict]="--checkpoint $none.h5 --input $none.txt --output $WORK/made/p.csv"
  [tokens]="--data $none.h5 --output $WORK/made/t.txt"
  [serve]="--checkpoint $none.h5 --port 0"
  [bench]="--model crepe-small --features 4 --fc 4 --batch-size 2 --warmup 0 --steps 1 --threads 1"
)
declare -A base_status=([bench]=0)
# Options whose every value is accepted.
accepts_negative=" "
# One case a line: COMMAND OPTION VALUE ARGUMENTS... (the base arguments without OPTION).
: > cases.txt
for command in preprocess train evaluate predict tokens serve bench; do
  read -r -a args <<< "${base[$command]}"
  run_ts "${base_status[$command]:-1}" "$command" "${args[@]}"
  # "--name arg (=default)" with a numeric default.
  options=$("$TEXTSCALE_BIN" "$command" --help | grep -oE -- '--[a-z0-9-]+ arg \(=-?[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?\)' |
    sed -E 's/^--([a-z0-9-]+) arg \(=(.*)\)$/\1 \2/')
  [ -n "$options" ] || fail "$command --help lists no numeric option"
  while read -r name default; do
    [[ $accepts_negative == *" $command --$name "* ]] && continue
    kept=() skip=0
    for a in "${args[@]}"; do
      if [ "$skip" = 1 ]; then skip=0; continue; fi
      if [ "$a" = "--$name" ]; then skip=1; continue; fi
      kept+=("$a")
    done
    value=-5
    [[ $default == *.* ]] && value=nan  # outside every range, as a negative number is for counts
    echo "$command --$name $value ${kept[*]}" >> cases.txt
  done <<< "$options"
done
# Each case: exit status 2 and the option named. The cases run side by side: loading cuBLAS
# takes most of a second at each start of the CUDA build's binary.
check_case() {
  local command=$1 option=$2 value=$3 status=0 err
  shift 3
  err=$(mktemp err.XXXXXX)
  "$TEXTSCALE_BIN" "$command" "$@" "$option" "$value" > /dev/null 2> "$err" || status=$?
  if [ "$status" != 2 ] || ! grep -qF -- "$option" "$err"; then
    echo "$command $option $value: exit $status (expected 2 naming $option): $(head -c 300 "$err")"
  fi
  rm -f "$err"
}
export -f check_case
export TEXTSCALE_BIN
xargs -P "$(nproc)" -L 1 bash -c 'check_case "$@"' _ < cases.txt > failures.txt
while read -r line; do fail "$line"; done < failures.txt
checked=$(wc -l < cases.txt)
[ "$checked" -gt 60 ] || fail "only $checked option values checked"
expect_absent "$WORK/made"  # nothing created for a refused command line
echo "$checked option values refused"

# The other kinds of mistake: an unknown option or a missing required one is 2; a file that cannot
# be read is 1.
run_ts 2 train --train "$none.h5" --no-such-option 1
run_ts 2 evaluate --data "$none.h5"
run_ts 2 train --train "$none.h5" --model no-such-model
expect_in "$WORK/err" "--model"
run_ts 1 evaluate --checkpoint "$none.h5" --data "$none.h5"
expect_in "$WORK/err" "$none.h5"
finish
