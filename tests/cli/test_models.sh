#!/usr/bin/env bash
# `textscale models` (and `train --model help`) lists every registered model with its published
# parameter count; an option that sets a hyperparameter the model does not have is refused,
# naming the option and the model.
source "$(dirname "$0")/lib.sh"
cd "$WORK"

# Trained parameters for 4 classes and 1014 characters: Zhang et al. 2015 and Conneau et al. 2017,
# the same as PyTorch's count of the models in bench/peer_models.py (tests/unit/test_models.cpp).
# bilstm over 50,000 words: the 50,000 x 200 table, 2 directions x (400 x (200 + 100) weights +
# 400 biases: one per gate, PyTorch's two summed), and the linear layer 200 x 4 + 4.
declare -A published=([crepe-small]=11337988 [crepe-large]=95933444 [vdcnn-9]=14176164 [vdcnn-17]=16268964
  [vdcnn-29]=16639908 [bilstm]=$((50000 * 200 + 2 * (400 * 300 + 400) + 200 * 4 + 4)))
declare -A reads=([crepe-small]=characters [crepe-large]=characters [vdcnn-9]=characters [vdcnn-17]=characters
  [vdcnn-29]=characters [bilstm]=words)

run_ts 0 models
cp out models.txt
for model in "${!published[@]}"; do
  grep -qE "^$model +${published[$model]} parameters, reads ${reads[$model]}$" models.txt ||
    fail "'$model ${published[$model]} parameters, reads ${reads[$model]}' not in the listing: $(cat models.txt)"
done
[ "$(grep -c ' parameters, reads ' models.txt)" = "${#published[@]}" ] ||
  fail "expected ${#published[@]} models in the listing: $(cat models.txt)"
expect_in models.txt 'hyperparameters: {"dropout":0.5,"fc":2048,"features":1024}'
expect_in models.txt 'hyperparameters: {"embedding":16,"fc":2048,"features":64,"kmax":8,"shortcut":false}'

run_ts 0 models --json
py - out "${!published[@]}" <<'PY' || fail "models --json"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
assert sorted(r["name"] for r in rows) == sorted(sys.argv[2:]), rows
for r in rows:
    assert 1e6 < r["parameters"] < 2e8, r
    assert r["description"] and r["hyperparameters"], r
    assert r["input"] == ("words" if r["name"] == "bilstm" else "characters"), r
PY

run_ts 0 train --model help
cmp -s out models.txt || fail "train --model help differs from textscale models"
run_ts 0 --help
expect_in out "models       the models train and bench build"
run_ts 0 train --help
expect_in out "models: crepe-small, crepe-large, vdcnn-9, vdcnn-17, vdcnn-29, bilstm"

# Hyperparameter options: refused for a model without that hyperparameter, before any file is read.
run_ts 2 train --train absent.h5 --model vdcnn-9 --dropout 0.3
expect_in err "--dropout is not an option of model vdcnn-9 (its hyperparameters: embedding, fc, features, kmax, shortcut"
run_ts 2 train --train absent.h5 --model crepe-large --shortcut true
expect_in err "--shortcut is not an option of model crepe-large"
run_ts 2 bench --model crepe-small --shortcut false
expect_in err "--shortcut is not an option of model crepe-small"
run_ts 2 train --train absent.h5 --model vdcnn-10
expect_in err "unknown model 'vdcnn-10' (known: crepe-small, crepe-large, vdcnn-9, vdcnn-17, vdcnn-29, bilstm)"
finish
