# Helpers of the `textscale serve` tests (sourced after lib.sh): a small trained checkpoint, and
# servers started on free ports and stopped by signal.

SERVER_PIDS=()
trap 'for pid in "${SERVER_PIDS[@]}"; do kill -KILL "$pid" 2> /dev/null || true; done; rm -rf "$WORK"' EXIT

# synthetic_csv ROWS: a Zhang-format CSV on stdout whose four classes differ by their words.
synthetic_csv() {
  py - "$1" <<'PY'
import random, sys
random.seed(7)
words = {
    1: "election minister treaty embassy parliament protest border summit",
    2: "goal match season coach league striker tournament victory",
    3: "shares profit market investors quarterly earnings merger stocks",
    4: "software internet chip computer research browser wireless space",
}
common = "the a of in on and after with said today new".split()
for i in range(int(sys.argv[1])):
    label = i % 4 + 1
    text = " ".join(random.choice(words[label].split() + common) for _ in range(random.randint(8, 30)))
    print(f'"{label}","{text.split()[0]}","{text}"')
PY
}

# tiny_checkpoint DATA: in the current folder, model.h5, a Crepe of small width trained for a few
# steps on AG News (from DATA) or, without it, on a synthetic 4-class CSV; and texts.json, a JSON
# list of texts to classify (news descriptions or synthetic ones, plus quotes, backslashes,
# newlines, non-ASCII text and a text longer than the model's 1014 characters).
tiny_checkpoint() {
  if [ -f "$1/ag_news/alps_train_sample/dev.tsv" ]; then
    ag_news_subset "$1" 400 16
    py -c "import csv,json; print(json.dumps([r[2] for r in csv.reader(open('test.csv'))]))" > sample.json
  else
    printf 'World\nSports\nBusiness\nSci/Tech\n' > classes.txt
    synthetic_csv 400 > train.csv
    "$TEXTSCALE_BIN" preprocess --input train.csv --classes classes.txt --no-words --output train.h5 -q
    synthetic_csv 16 | py -c "import csv,json,sys; print(json.dumps([r[2] for r in csv.reader(sys.stdin)]))" \
      > sample.json
  fi
  "$TEXTSCALE_BIN" train --train train.h5 --model crepe-small --features 32 --fc 64 --batch-size 32 --epochs 1 \
    --max-steps 6 --run-dir tiny --progress off > train.out 2>&1 || fail "training the tiny model: $(cat train.out)"
  cp tiny/checkpoint.h5 model.h5
  py - <<'PY'
import json
texts = json.load(open("sample.json"))
texts += ['He said "no" \\n twice', "Z\u00fcrich caf\u00e9 \u2013 stocks rise \U0001F4C8", "line one\nline two",
          "Back\\\\slash and \\$5", "x" * 3000]
json.dump(texts, open("texts.json", "w"))
PY
}

# start_server NAME ARGS...: `textscale serve --port 0 ARGS` in the background, its standard
# output and error in NAME.log. Sets SERVER_PID and URL (http://127.0.0.1:PORT) once the server
# prints its address; fails the test (and returns 1) if it exits first or takes over 120 s.
start_server() {
  local name=$1
  shift
  "$TEXTSCALE_BIN" serve --port 0 "$@" > "$name.log" 2>&1 &
  SERVER_PID=$!
  SERVER_PIDS+=("$SERVER_PID")
  URL=
  local _
  for _ in $(seq 1 1200); do
    URL=$(grep -o 'listening on http://[^ ]*' "$name.log" | head -n 1 | cut -d' ' -f3)
    [ -n "$URL" ] && return 0
    if ! kill -0 "$SERVER_PID" 2> /dev/null; then
      fail "textscale serve $* exited before listening: $(cat "$name.log")"
      return 1
    fi
    sleep 0.1
  done
  fail "textscale serve $* did not listen within 120 s"
  return 1
}

# stop_server: SIGTERM, then the exit status must be 0.
stop_server() {
  kill -TERM "$SERVER_PID"
  local status=0
  wait "$SERVER_PID" || status=$?
  [ "$status" = 0 ] || fail "textscale serve exited $status after SIGTERM"
}

# post BODY [CURL ARGS...]: POSTs BODY (JSON) to /v1/classify; the answer's body in $WORK/body,
# its status code on stdout.
post() {
  local body=$1
  shift
  curl -s -o "$WORK/body" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$body" "$@" \
    "$URL/v1/classify"
}

# expect_status EXPECTED WHAT STATUS: STATUS is EXPECTED, and the answer's body is {"error": ...}
# for a status of 400 or more.
expect_status() {
  [ "$3" = "$1" ] || fail "$2: status $3, expected $1 (body: $(head -c 300 "$WORK/body"))"
  if [ "$1" -ge 400 ]; then
    py -c "import json; e = json.load(open('$WORK/body'))['error']; assert isinstance(e, str) and e" 2> /dev/null ||
      fail "$2: the body is not a JSON error: $(head -c 300 "$WORK/body")"
  fi
}
