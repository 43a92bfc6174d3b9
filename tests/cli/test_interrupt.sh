#!/usr/bin/env bash
# SIGINT/SIGTERM stop textscale preprocess promptly with exit status 128+signal, and remove every
# temporary file: while it copies standard input (counting pass) and while its reader thread is
# blocked on a pipe (single pass).
source "$(dirname "$0")/lib.sh"
cd "$WORK"

interrupt_while_blocked() {  # interrupt_while_blocked SIGNAL OUTPUT ARGS...
  local signal=$1 output=$2
  shift 2
  mkfifo feed
  # The writer keeps the pipe open and silent after one row, so textscale blocks in read().
  ( printf '"1","title","text"\n'; sleep 60 ) > feed &
  local writer=$!
  "$TEXTSCALE_BIN" preprocess --input - --output "$output" "$@" < feed > out 2> err &
  local pid=$!
  # Signal once it is under way: its temporary file exists (up to 10 s on a busy machine).
  local started=0
  while [ $started -lt 100 ] && ! compgen -G "$output.*" > /dev/null; do sleep 0.1; started=$((started + 1)); done
  compgen -G "$output.*" > /dev/null || fail "no temporary file for $output after 10 s"
  sleep 0.2
  kill -"$signal" "$pid"
  local status=0 waited=0
  while kill -0 "$pid" 2>/dev/null && [ $waited -lt 50 ]; do sleep 0.1; waited=$((waited + 1)); done
  if kill -0 "$pid" 2>/dev/null; then
    fail "textscale still running 5 s after SIG$signal"
    kill -9 "$pid"
  fi
  wait "$pid" || status=$?
  kill "$writer" 2>/dev/null || true
  wait "$writer" 2>/dev/null || true
  rm -f feed
  local expected=$((128 + $(kill -l "$signal")))
  [ "$status" = "$expected" ] || fail "SIG$signal: exit status $status, expected $expected ($(cat err))"
  expect_in err "interrupted by signal"
  expect_absent "$output"
  no_leftovers "$WORK"
}

interrupt_while_blocked INT copied.h5                 # counting pass: stdin copied to a temporary file
interrupt_while_blocked TERM single.h5 --no-words     # one pass: the reader thread blocks on the pipe
interrupt_while_blocked INT shuffled.h5 --no-words --shuffle
finish
