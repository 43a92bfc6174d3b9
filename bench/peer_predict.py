#!/usr/bin/python3
"""The PyTorch peer of `textscale predict`: the whole path a Python user would write, from a raw
CSV to a predictions CSV, for the same model on the same encoding.

- Reads the input with Python's csv module in the layout of the checkpoint's training file (its
  `text_options`: zhang or tsv, delimiter, label and text columns, header) and undoes its
  backslash escapes (none, newline, backslash: textscale's rules, docs/hdf5-schema.md).
- Encodes as textscale does: character models, Zhang's 69 symbols (ASCII lower-cased, anything
  else 0), the first 1014 characters written reversed; word models, the textscale-words-1
  tokenizer (a regular expression over the same character classes), the checkpoint's vocabulary,
  the first W words.
- Runs the model (bench/peer_models.py, peer_word_models.py) under torch.no_grad() in batches of
  --batch-size, with torch.set_num_threads(--threads); character models load the checkpoint's
  weights, so their predictions equal textscale's up to float rounding; the BiLSTM peer keeps
  its own initial weights (its speed does not depend on them).
- Writes record, line, label, predicted, index and one probability a class with csv.writer.

Prints one JSON line: records, seconds, records_per_second, megabytes_per_second, and the time
outside the model (read, encode, write) and inside it.

    /usr/bin/python3 bench/peer_predict.py --checkpoint C.h5 --input test.csv --output peer.csv
"""

import argparse
import csv
import json
import os
import re
import sys
import time

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_models import build_model  # noqa: E402
from peer_train import load_textscale_weights  # noqa: E402
from peer_word_models import build_word_model  # noqa: E402

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+=<>()[]{}\n"
CHAR_TABLE = np.zeros(128, dtype=np.uint8)
for i, c in enumerate(ALPHABET):
    CHAR_TABLE[ord(c)] = i + 1
for c in range(ord("A"), ord("Z") + 1):
    CHAR_TABLE[c] = CHAR_TABLE[c + 32]

# textscale-words-1: ASCII letters and digits, and non-ASCII code points outside the listed
# punctuation ranges; lower-casing of ASCII A-Z and Latin-1 U+00C0-U+00DE except U+00D7.
TOKEN = re.compile("[0-9A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u1fff\u2070-\u2fff\u3040-\ufe2f"
                   "\ufe50-\ufeff\uff10-\uffef\U00010000-\U0010ffff]+")
LOWER = {c: c + 32 for c in list(range(0x41, 0x5B)) + [c for c in range(0xC0, 0xDF) if c != 0xD7]}


def unescape(text, mode):
    if mode == "newline":
        return text.replace("\\n", "\n")
    if mode == "backslash":
        return re.sub(r"\\+", lambda m: "\n", text.replace("\\$", "$"))
    return text


def encode_chars(text, length, out):
    points = np.frombuffer(text[:length].encode("utf-32-le"), dtype=np.uint32)
    codes = np.where(points < 128, CHAR_TABLE[np.minimum(points, 127)], 0)
    out[:] = 0
    out[:len(codes)] = codes[::-1]


def encode_words(text, vocab, width, out):
    tokens = TOKEN.findall(text.translate(LOWER))[:width]
    out[:] = 0
    out[:len(tokens)] = [vocab.get(t, 1) for t in tokens]
    return len(tokens)


def read_checkpoint(path):
    with h5py.File(path, "r") as f:
        attr = lambda name: f.attrs[name].decode() if isinstance(f.attrs[name], bytes) else f.attrs[name]
        model = json.loads(attr("model"))
        options = json.loads(attr("text_options"))
        classes = [c.decode() if isinstance(c, bytes) else str(c) for c in f.attrs["classes"]]
        vocab = None
        if "vocab" in f:
            vocab = {w.decode(): i for i, w in enumerate(f["vocab"][...])}
        word_length = int(f.attrs["word_length"]) if "word_length" in f.attrs else 0
    return model, options, classes, vocab, word_length


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--input-format", default="training", choices=("training", "zhang"))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model_config, options, classes, vocab, word_length = read_checkpoint(args.checkpoint)
    name, hp = model_config["name"], model_config["hyperparameters"]
    num_classes = model_config["classes"]
    words = name == "bilstm"
    if words:
        model = build_word_model(name, num_classes, len(vocab), embed_dim=hp["embedding"], hidden=hp["hidden"],
                                 pooling=hp["pooling"])
    else:
        model = build_model(name, num_classes, shortcut=bool(hp.get("shortcut", False)))
        load_textscale_weights(model, args.checkpoint)
    model.eval()
    if args.input_format == "zhang" or options["format"] == "zhang":
        delimiter, label_column, text_columns, header = ",", 0, [], False
    else:
        delimiter, label_column = options["delimiter"], options["label_column"]
        text_columns, header = options["text_columns"], options["header"]
    mode = options["unescape"]
    width = word_length if words else model_config["length"]
    names = {c: i for i, c in enumerate(classes)}

    start = time.perf_counter()
    inside = 0.0
    records = 0
    with open(args.input, newline="", encoding="utf-8") as f_in, open(args.output, "w", newline="") as f_out:
        reader = csv.reader(f_in, delimiter=delimiter)
        writer = csv.writer(f_out, lineterminator="\n")
        writer.writerow(["record", "line", "label", "predicted", "index"] + ["prob_" + c for c in classes])
        if header:
            next(reader)
        ids = np.zeros((args.batch_size, width), dtype=np.int64 if words else np.uint8)
        lengths = np.zeros(args.batch_size, dtype=np.int64)
        pending = []

        def flush():
            nonlocal inside
            n = len(pending)
            t0 = time.perf_counter()
            with torch.no_grad():
                if words:
                    cut = max(1, int(lengths[:n].max()))
                    logits = model(torch.from_numpy(ids[:n, :cut]), torch.from_numpy(lengths[:n]))
                else:
                    logits = model(torch.from_numpy(ids[:n]))
                p = torch.softmax(logits, dim=1).numpy()
            inside += time.perf_counter() - t0
            for (record, line, label), row in zip(pending, p):
                best = int(row.argmax())
                writer.writerow([record, line, label, classes[best], best] + [f"{v:.8g}" for v in row])
            pending.clear()

        for fields in reader:
            line = reader.line_num
            label = fields[label_column]
            if options["format"] == "zhang" or args.input_format == "zhang":
                label = classes[int(label) - 1] if classes else str(int(label) - 1)
            columns = text_columns or [i for i in range(len(fields)) if i != label_column]
            text = " ".join(unescape(fields[i], mode) for i in columns)
            i = len(pending)
            if words:
                lengths[i] = encode_words(text, vocab, width, ids[i])
            else:
                encode_chars(text, width, ids[i])
            pending.append((records, line, label if label in names else ""))
            records += 1
            if len(pending) == args.batch_size:
                flush()
        if pending:
            flush()
    seconds = time.perf_counter() - start
    size = os.path.getsize(args.input)
    print(json.dumps({"records": records, "seconds": seconds, "records_per_second": records / seconds,
                      "megabytes_per_second": size / 1e6 / seconds, "infer_seconds": inside,
                      "outside_seconds": seconds - inside}))


if __name__ == "__main__":
    main()
