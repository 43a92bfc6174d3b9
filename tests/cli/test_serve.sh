#!/usr/bin/env bash
# `textscale serve` over HTTP on loopback, with curl and tests/cli/serve_clients.py, on a small
# Crepe trained here (AG News from TEXTSCALE_DATA, or a synthetic CSV without it: never skipped):
# the command line; the start line; /healthz, / and /metrics; answers for one text, a list and
# top_k, equal to `textscale predict`'s for the same texts; every bad request answered with its status
# and a JSON error while the server keeps answering; clients that vanish or stall (with N HTTP
# threads, N - 1 stalled connections leave one serving); concurrent requests batched; a full
# queue answered 503; SIGTERM during requests: they are answered, new connections refused, exit
# 0. The page in a browser is tests/cli/test_serve_page.sh.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/serve_lib.sh"
DATA=${TEXTSCALE_DATA:-$TEXTSCALE_SOURCE_DIR/../shared/data}
clients() { py "$TEXTSCALE_SOURCE_DIR/tests/cli/serve_clients.py" "$@"; }
cd "$WORK"
export OMP_NUM_THREADS=2
tiny_checkpoint "$DATA"

# --- Command line -----------------------------------------------------------------------------------
run_ts 0 serve --help
expect_in out "--max-delay-ms"
expect_in out "--http-threads"
run_ts 2 serve
expect_in err "--checkpoint is required"
run_ts 2 serve --checkpoint model.h5 --max-batch 0
expect_in err "--max-batch must be at least 1"
run_ts 2 serve --checkpoint model.h5 --unescape sometimes
expect_in err "--unescape must be none, newline or backslash"
run_ts 2 serve --checkpoint model.h5 --port 70000
run_ts 1 serve --checkpoint absent.h5 --port 0
expect_in err "absent.h5"

# --- The API ------------------------------------------------------------------------------------------
start_server api --checkpoint model.h5 --threads 2 --max-body 20000 --max-texts 32 --max-text-bytes 4000 \
  --http-threads 4 --read-timeout 2 --keep-alive-timeout 2 || { finish; exit; }
expect_in api.log "listening on http://127.0.0.1:"
expect_in api.log "model crepe-small revision "
expect_in api.log "4 classes: World, Sports, Business, Sci/Tech; backend onednn, 2 threads; 4 HTTP threads"
expect_in api.log "batches of up to 64 texts, max delay 5 ms, queue 256 requests; unescape none"
# A second server on the same port is refused (no SO_REUSEPORT sharing of the connections).
run_ts 1 serve --checkpoint model.h5 --port "${URL##*:}"
expect_in "$WORK/err" "cannot listen on 127.0.0.1:${URL##*:}"

curl -s "$URL/healthz" > health.json
py - <<'PY' || fail "/healthz"
import json
h = json.load(open("health.json"))
assert h["status"] == "ok" and h["model"] == "crepe-small", h
assert h["classes"] == ["World", "Sports", "Business", "Sci/Tech"] and len(h["revision"]) == 12, h
PY
# The page: HTML, self-contained (nothing loaded from elsewhere).
curl -s -D page.headers "$URL/" > page.html
expect_in page.headers "Content-Type: text/html"
expect_in page.html "<textarea"
expect_in page.html "/v1/classify"
if grep -Eiq "(src|href|action)=[\"']?[a-z]*:?//|@import|url\(" page.html; then
  fail "the page refers to a resource elsewhere: $(grep -Eio "(src|href|action)=[\"']?[a-z]*:?//[^ ]*" page.html)"
fi

# One text, a list, top_k. Each answer is a distribution whose arg max is "predicted".
py -c "import json; print(json.dumps({'texts': json.load(open('texts.json'))}))" > all.json
status=$(post @all.json)
expect_status 200 "a list of texts" "$status"
cp "$WORK/body" list.json
status=$(post '{"text": "Stocks rallied after the quarterly earnings report", "top_k": 2}')
expect_status 200 "top_k" "$status"
cp "$WORK/body" top.json
py - <<'PY' || fail "answers"
import json
texts = json.load(open("texts.json"))
answers = json.load(open("list.json"))["predictions"]
assert len(answers) == len(texts), (len(answers), len(texts))
names = ["World", "Sports", "Business", "Sci/Tech"]
for a in answers:
    p = a["probabilities"]
    assert list(p) == names, p
    # Four float32 probabilities, each rounded once from an exact quotient: the sum is 1 within
    # a few units of 2^-24.
    assert abs(sum(p.values()) - 1) < 1e-6, p
    assert a["index"] == max(range(4), key=lambda c: (p[names[c]], -c)) and a["predicted"] == names[a["index"]], a
top = json.load(open("top.json"))["top"]
assert len(top) == 2 and top[0]["probability"] >= top[1]["probability"], top
assert top[0]["class"] == names[top[0]["index"]]
PY
# The round trip equals `textscale predict` on the same texts (JSON Lines in, unescaping none as
# serve's default). The list above was one forward pass of all the texts, as predict's is with
# --batch-size at their number: the same sums in the same order, so the same floats, written the
# same shortest way. Each text sent alone is a forward pass of one row, for which oneDNN picks
# other kernels and blockings, so every sum of the convolutions and dense layers (224 to 1088
# products of order one here) is taken in another order; each is exact to within n 2^-24 of the
# sum of its terms' magnitudes and in practice to about sqrt(n) 2^-24, and a softmax moves a
# probability by at most half the largest change of a logit. 1e-6 on a probability allows logit
# changes of 2e-6, about 30 units of 2^-24: the sqrt(n) growth over the model's nine layers, and
# 25 times the largest difference measured between batch sizes 1 to 64 (4e-8). An encoding or
# batching mistake (a wrong row, a character lost or unescaped) moves probabilities far more.
py -c "import json; [print(json.dumps({'text': t})) for t in json.load(open('texts.json'))]" > texts.jsonl
count=$(wc -l < texts.jsonl)
run_ts 0 predict --checkpoint model.h5 --input texts.jsonl --input-format jsonl --unescape none --batch-size "$count" \
  --output predict.jsonl --output-format jsonl --threads 2 -q
i=0
while read -r text; do
  status=$(post "{\"text\": $text}")
  expect_status 200 "text $i alone" "$status"
  cp "$WORK/body" "alone-$i.json"
  i=$((i + 1))
done < <(py -c "import json; [print(json.dumps(t)) for t in json.load(open('texts.json'))]")
py - "$i" <<'PY' || fail "serve's answers differ from predict's"
import json, sys
predicted = [json.loads(line) for line in open("predict.jsonl")]
batched = json.load(open("list.json"))["predictions"]
assert len(predicted) == len(batched) == int(sys.argv[1]), (len(predicted), len(batched))
for i, (p, b) in enumerate(zip(predicted, batched)):
    assert p["record"] == i, p
    same = {k: p[k] for k in ("predicted", "index", "probabilities")}
    assert same == b, ("one batch", i, p, b)
    alone = json.load(open(f"alone-{i}.json"))
    worst = max(abs(alone["probabilities"][c] - p["probabilities"][c]) for c in p["probabilities"])
    assert worst <= 1e-6, ("alone", i, worst, alone, p)
print(f"serve = predict on {len(predicted)} texts: bitwise in one batch, within 1e-6 one at a time")
PY

# --- Bad requests: status and JSON error; the server keeps answering -----------------------------
expect_status 400 "invalid JSON" "$(post '{"text": ')"
expect_status 400 "not an object" "$(post '["a"]')"
expect_status 400 "neither text nor texts" "$(post '{"txt": "a"}')"
expect_status 400 "a text that is not a string" "$(post '{"text": 3}')"
expect_status 400 "top_k 0" "$(post '{"text": "a", "top_k": 0}')"
expect_status 400 "top_k over the classes" "$(post '{"text": "a", "top_k": 5}')"
expect_status 422 "an empty list" "$(post '{"texts": []}')"
expect_status 422 "a blank text" "$(post '{"texts": ["fine", "   "]}')"
expect_in "$WORK/body" "texts[1]: empty text"
py -c "import json; print(json.dumps({'texts': ['t'] * 33}))" > many.json
expect_status 413 "more texts than --max-texts" "$(post @many.json)"
py -c "import json; print(json.dumps({'texts': ['ok', 'y' * 4001]}))" > long_text.json
expect_status 413 "a text over --max-text-bytes" "$(post @long_text.json)"
expect_in "$WORK/body" "texts[1] is 4001 bytes"
py -c "import json; print(json.dumps({'text': 'z' * 30000}))" > huge.json
expect_status 413 "a body over --max-body" "$(post @huge.json)"
expect_status 413 "a chunked body over --max-body" "$(post @huge.json -H 'Transfer-Encoding: chunked')"
expect_status 415 "text/plain" "$(curl -s -o "$WORK/body" -w '%{http_code}' -H 'Content-Type: text/plain' \
  --data-binary '{"text": "a"}' "$URL/v1/classify")"
expect_status 415 "a form" "$(curl -s -o "$WORK/body" -w '%{http_code}' -d 'text=a' "$URL/v1/classify")"
expect_status 405 "GET /v1/classify" "$(curl -s -o "$WORK/body" -w '%{http_code}' "$URL/v1/classify")"
expect_status 404 "an unknown path" "$(curl -s -o "$WORK/body" -w '%{http_code}' "$URL/nothing/here")"
# gzip-encoded bodies are read (and held to --max-body once decompressed).
py -c "import gzip, sys; sys.stdout.buffer.write(gzip.compress(b'{\"text\": \"compressed news\"}'))" > small.gz
expect_status 200 "a gzip body" "$(post @small.gz -H 'Content-Encoding: gzip')"
py -c "import gzip, sys; sys.stdout.buffer.write(gzip.compress(open('huge.json', 'rb').read()))" > huge.gz
expect_status 413 "a gzip body over --max-body once decompressed" "$(post @huge.gz -H 'Content-Encoding: gzip')"
# Clients that disconnect before their answer, mid-headers and mid-body.
clients vanish "$URL" > /dev/null || fail "serve_clients.py vanish"
expect_status 200 "a good request after the bad ones" "$(post '{"text": "still answering"}')"

# --- Slow clients: with 4 HTTP threads, 3 stalled connections leave one serving ---------------------
# past_stalled N SECONDS TEXT: N clients stall their connections for SECONDS; meanwhile one request
# with TEXT is answered; prints the time it took (the stalling clients run on in the background,
# $stall_pid).
past_stalled() {
  clients stall "$URL" "$1" "$2" > "stall$1.out" &
  stall_pid=$!
  for _ in $(seq 1 50); do grep -q stalling "stall$1.out" 2> /dev/null && break; sleep 0.1; done
  sleep 0.3
  curl -s -o "$WORK/body" -w '%{time_total}' -H 'Content-Type: application/json' \
    --data-binary "{\"text\": \"$3\"}" "$URL/v1/classify"
}
past_stalled 3 4 "past the stalled" > seconds.txt
seconds=$(cat seconds.txt)
expect_in "$WORK/body" "predicted"
py -c "import sys; sys.exit(0 if $seconds < 2.0 else 1)" || fail "3 stalled connections of 4 threads: answered in $seconds s"
echo "3 stalled connections, 4 HTTP threads: a request answered in $seconds s"
wait "$stall_pid"
# 4 stalled connections hold every thread: a request waits until --read-timeout (2 s) and
# --keep-alive-timeout (2 s) have freed one, and is then answered.
sleep 4.5
past_stalled 4 8 "behind the stalled" > seconds.txt
seconds=$(cat seconds.txt)
expect_in "$WORK/body" "predicted"
py -c "import sys; sys.exit(0 if 1.0 < $seconds < 12 else 1)" || fail "4 stalled connections of 4 threads: answered in $seconds s"
echo "4 stalled connections, 4 HTTP threads: a request answered in $seconds s (after the read timeouts)"
wait "$stall_pid"

curl -s "$URL/metrics" > metrics.txt
expect_in metrics.txt 'textscale_http_requests_total{handler="/v1/classify",code="413"} 5'
expect_in metrics.txt 'textscale_http_requests_total{handler="/v1/classify",code="415"} 2'
expect_in metrics.txt 'textscale_http_requests_total{handler="other",code="404"} 1'
expect_in metrics.txt 'textscale_model_info{model="crepe-small",revision="'
expect_in metrics.txt '# TYPE textscale_request_duration_seconds histogram'
if grep -q '"POST /v1/classify' api.log; then fail "access log lines without --access-log"; fi
stop_server

# --- Concurrent requests are batched -------------------------------------------------------------
start_server batching --checkpoint model.h5 --threads 2 --max-delay-ms 50 --http-threads 32 --access-log ||
  { finish; exit; }
echo '{"text": "sixteen clients at once"}' > one.json
clients burst "$URL" 16 one.json > burst.out
[ "$(grep -c '^200$' burst.out)" = 16 ] || fail "16 concurrent requests: $(sort burst.out | uniq -c)"
# And 16 from one curl, in parallel over 16 connections.
urls=()
for _ in $(seq 1 16); do urls+=(-o /dev/null "$URL/v1/classify"); done
curl -s --parallel --parallel-immediate --parallel-max 16 -w '%{http_code}\n' -H 'Content-Type: application/json' \
  --data-binary @one.json "${urls[@]}" > parallel.out 2> /dev/null
[ "$(grep -c '^200$' parallel.out)" = 16 ] || fail "16 parallel curl requests: $(sort parallel.out | uniq -c)"
curl -s "$URL/metrics" > metrics.txt
py - <<'PY' || fail "no batch of more than one text after concurrent requests: $(grep batch_size metrics.txt)"
import re
text = open("metrics.txt").read()
single = int(re.search(r'^textscale_batch_size_bucket\{le="1"\} (\d+)$', text, re.M).group(1))
batches = int(re.search(r"^textscale_batch_size_count (\d+)$", text, re.M).group(1))
texts = int(re.search(r"^textscale_texts_total (\d+)$", text, re.M).group(1))
assert texts == 32 and batches > single, (texts, batches, single)
print(f"32 concurrent requests in {batches} batches, {batches - single} of them of more than one text")
PY
expect_in batching.log '"POST /v1/classify HTTP/1.1" 200'
stop_server

# --- A full queue answers 503 ---------------------------------------------------------------------
start_server full --checkpoint model.h5 --threads 2 --max-queue 2 --max-delay-ms 2000 --http-threads 32 ||
  { finish; exit; }
clients burst "$URL" 16 one.json > full.out
grep -q '^200$' full.out || fail "a full queue: no request answered: $(sort full.out | uniq -c)"
grep -q '^503 retry-after=1$' full.out || fail "a full queue: no 503 with Retry-After: $(sort full.out | uniq -c)"
echo "16 requests at once, --max-queue 2: $(sort full.out | uniq -c | tr -s ' ' | paste -sd,)"
expect_status 200 "a good request after the 503s" "$(post '{"text": "the queue has room again"}')"
stop_server

# --- SIGTERM: requests in flight are answered, then exit 0 --------------------------------------------
# An idle connection keeps the batcher waiting its full --max-delay-ms, so the 8 requests are still
# queued when the signal arrives (the queue gauge says so).
start_server drain --checkpoint model.h5 --threads 2 --max-delay-ms 3000 --keep-alive-timeout 5 --http-threads 16 ||
  { finish; exit; }
clients burst "$URL" 8 one.json --idle 1 > drain.out &
burst_pid=$!
for _ in $(seq 1 100); do
  curl -s "$URL/metrics" | grep -q '^textscale_queue_requests 8$' && break
  sleep 0.05
done
kill -TERM "$SERVER_PID"
sleep 0.2
refused=0
curl -s -o /dev/null --max-time 5 "$URL/healthz" || refused=$?
[ "$refused" = 7 ] || fail "a new connection after SIGTERM: curl exit $refused, expected 7 (refused)"
status=0
wait "$SERVER_PID" || status=$?
[ "$status" = 0 ] || fail "SIGTERM with requests in flight: exit $status, expected 0 ($(tail -3 drain.log))"
wait "$burst_pid"
[ "$(grep -c '^200$' drain.out)" = 8 ] || fail "requests in flight at SIGTERM: $(sort drain.out | uniq -c)"
expect_in drain.log "finishing the requests in flight"

finish
