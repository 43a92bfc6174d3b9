#!/usr/bin/python3
"""Python peer of `textscale preprocess --format zhang` for the preprocessing benchmark.

A straightforward but competent single-process implementation of the same job: Zhang CSV
("class","title","text", 1-based class) -> HDF5 `labels` int32 [N], `chars` uint8 [N, L] and
`words` int32 [N, W] (plus char_lengths, word_lengths, vocab and vocab_counts, like textscale).

- parsing: the csv module; the text columns are joined by one space and `\\n` (backslash, n)
  becomes a line feed (textscale's default --unescape newline);
- characters: vectorised with numpy: a batch's texts, each cut to its first L code points, are
  encoded as UTF-32 in one buffer, mapped through a lookup table (Zhang's 69 symbols, ASCII
  lower-cased, everything else 0), and scattered reversed into the [B, L] block;
- words: textscale's tokenizer rules (ASCII letters and digits and non-punctuation non-ASCII code
  points are token characters); ASCII rows take a bytes.translate + split fast path, other rows
  an equivalent regex. Lower-casing of non-ASCII rows uses str.lower(), which goes beyond
  textscale's ASCII + Latin-1 rule (the only intended difference);
- vocabulary: a first pass counts tokens with collections.Counter; ids 0 = <pad>, 1 = <unk>, then
  the top V-2 words by count (descending) and bytes (ascending); a second pass re-reads the file
  and encodes;
- output: h5py, resizable chunked datasets (textscale's chunk shapes), written a batch at a time.

Run it with /usr/bin/python3 (numpy + h5py). Not supported: shuffling, validation splits, other
formats. Prints rows, seconds and MB/s.

Usage: /usr/bin/python3 peer_preprocess.py --input train.csv --output peer.h5
"""

import argparse
import collections
import csv
import hashlib
import itertools
import os
import re
import sys
import time

import h5py
import numpy as np

ALPHABET_AS_LISTED = "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+-=<>()[]{}\n"
ALPHABET = "".join(dict.fromkeys(ALPHABET_AS_LISTED))  # 69 distinct symbols, '-' once

# Code point -> symbol index, for code points 0..127; 128 stands for every non-ASCII character.
CHAR_LUT = np.zeros(129, dtype=np.uint8)
for _i, _c in enumerate(ALPHABET):
    CHAR_LUT[ord(_c)] = _i + 1
    if "a" <= _c <= "z":
        CHAR_LUT[ord(_c.upper())] = _i + 1

# ASCII fast path of the tokenizer: letters and digits (lower-cased) stay, other ASCII -> space.
_ascii_map = bytearray(b" " * 256)
for _b in range(256):
    if _b >= 0x80 or chr(_b).isalnum():  # chr(b).isalnum() is ASCII alnum for b < 0x80
        _ascii_map[_b] = _b
for _b in range(ord("A"), ord("Z") + 1):
    _ascii_map[_b] = _b + 32
ASCII_TOKEN_TABLE = bytes(_ascii_map)

# textscale-words-1: every non-ASCII code point is a token character except these ranges.
TOKEN_RE = re.compile("[0-9a-zA-Z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u1FFF\u2070-\u2FFF"
                      "\u3040-\uFE2F\uFE50-\uFEFF\uFF10-\uFFEF\U00010000-\U0010FFFF]+")


def tokens(text):
    """Tokens of one text, as UTF-8 bytes."""
    if text.isascii():
        return text.encode("ascii").translate(ASCII_TOKEN_TABLE).split()
    return [t.encode() for t in TOKEN_RE.findall(text.lower())]


def batches(path, batch_rows, stats):
    """Yields (labels, texts) lists for the good rows, `batch_rows` rows at a time."""
    with open(path, "r", encoding="utf-8", newline="") as f:
        labels, texts = [], []
        for record in csv.reader(f):
            stats["records"] += 1
            if len(record) < 2:
                stats["bad"] += 1
                continue
            try:
                label = int(record[0]) - 1
            except ValueError:
                label = -1
            if label < 0:
                stats["bad"] += 1
                continue
            text = " ".join(record[1:])
            if "\\" in text:
                text = text.replace("\\n", "\n")
            if not text.strip(" \t\n\r\f\v"):  # textscale: blank = only ASCII whitespace
                stats["bad"] += 1
                continue
            labels.append(label)
            texts.append(text)
            if len(texts) == batch_rows:
                yield labels, texts
                labels, texts = [], []
        if texts:
            yield labels, texts


def encode_chars(texts, L):
    """[B, L] uint8: each text's first L characters, quantised and reversed; and their counts."""
    cut = [t[:L] for t in texts]
    lengths = np.fromiter(map(len, cut), dtype=np.int64, count=len(cut))
    codes = np.frombuffer("".join(cut).encode("utf-32-le"), dtype="<u4")
    symbols = CHAR_LUT[np.minimum(codes, 128)]
    out = np.zeros((len(texts), L), dtype=np.uint8)
    rows = np.repeat(np.arange(len(texts)), lengths)
    starts = np.cumsum(lengths) - lengths
    # position j inside row i goes to column k_i - 1 - j
    columns = np.repeat(starts + lengths - 1, lengths) - np.arange(codes.size)
    out[rows, columns] = symbols
    return out, lengths.astype(np.int32)


def encode_words(texts, vocab_get, W):
    """[B, W] int32 word ids (0-padded) and the number of words kept per row."""
    flat = []
    lengths = np.empty(len(texts), dtype=np.int64)
    one = itertools.repeat(1)
    for i, t in enumerate(texts):
        toks = tokens(t)[:W]
        lengths[i] = len(toks)
        flat.extend(map(vocab_get, toks, one))
    ids = np.array(flat, dtype=np.int32)
    out = np.zeros((len(texts), W), dtype=np.int32)
    rows = np.repeat(np.arange(len(texts)), lengths)
    starts = np.cumsum(lengths) - lengths
    out[rows, np.arange(ids.size) - np.repeat(starts, lengths)] = ids
    return out, lengths.astype(np.int32)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 22)
            if not block:
                return h.hexdigest()
            h.update(block)


def main():
    ap = argparse.ArgumentParser(description="Python peer of textscale preprocess (Zhang CSV -> HDF5)")
    ap.add_argument("--input", required=True, help="Zhang CSV file")
    ap.add_argument("--output", required=True, help="output HDF5 file")
    ap.add_argument("--char-length", type=int, default=1014)
    ap.add_argument("--word-length", type=int, default=300)
    ap.add_argument("--vocab-size", type=int, default=50000, help="ids, counting 0 (pad) and 1 (unk)")
    ap.add_argument("--batch-rows", type=int, default=8192)
    ap.add_argument("--no-sha256", action="store_true", help="skip hashing the input (textscale hashes it)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    L, W = args.char_length, args.word_length
    start = time.time()
    size = os.path.getsize(args.input)

    # Pass 1: vocabulary.
    counter = collections.Counter()
    stats = collections.Counter()
    for _, texts in batches(args.input, args.batch_rows, stats):
        ascii_rows = [t for t in texts if t.isascii()]
        other_rows = [t for t in texts if not t.isascii()]
        counter.update(" ".join(ascii_rows).encode("ascii").translate(ASCII_TOKEN_TABLE).split())
        if other_rows:
            counter.update(t.encode() for t in TOKEN_RE.findall(" ".join(other_rows).lower()))
    pass1 = time.time() - start
    top = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:max(args.vocab_size - 2, 0)]
    vocab = {w: i + 2 for i, (w, _) in enumerate(top)}
    in_vocab = sum(c for _, c in top)
    total_tokens = sum(counter.values())

    # Pass 2: encode and write.
    tmp = args.output + ".tmp"
    stats2 = collections.Counter()
    n = 0
    class_counts = collections.Counter()
    with h5py.File(tmp, "w") as f:
        d_labels = f.create_dataset("labels", (0,), dtype="<i4", maxshape=(None,), chunks=(1 << 16,))
        d_chars = f.create_dataset("chars", (0, L), dtype="u1", maxshape=(None, L),
                                   chunks=(max(1, (1 << 20) // L), L))
        d_clen = f.create_dataset("char_lengths", (0,), dtype="<i4", maxshape=(None,), chunks=(1 << 16,))
        d_words = f.create_dataset("words", (0, W), dtype="<i4", maxshape=(None, W),
                                   chunks=(max(1, (1 << 20) // (4 * W)), W))
        d_wlen = f.create_dataset("word_lengths", (0,), dtype="<i4", maxshape=(None,), chunks=(1 << 16,))
        vocab_get = vocab.get
        for labels, texts in batches(args.input, args.batch_rows, stats2):
            b = len(texts)
            chars, char_lengths = encode_chars(texts, L)
            words, word_lengths = encode_words(texts, vocab_get, W)
            for d in (d_labels, d_chars, d_clen, d_words, d_wlen):
                d.resize(n + b, axis=0)
            d_labels[n:n + b] = np.array(labels, dtype=np.int32)
            d_chars[n:n + b] = chars
            d_clen[n:n + b] = char_lengths
            d_words[n:n + b] = words
            d_wlen[n:n + b] = word_lengths
            class_counts.update(labels)
            n += b
        words_out = ["<pad>", "<unk>"] + [w.decode() for w, _ in top]
        f.create_dataset("vocab", data=np.array(words_out, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("vocab_counts", data=np.array([0, total_tokens - in_vocab] + [c for _, c in top],
                                                       dtype=np.int64))
        f.attrs["num_rows"] = n
        f.attrs["num_classes"] = (max(class_counts) + 1) if class_counts else 0
        f.attrs["char_length"] = L
        f.attrs["word_length"] = W
        f.attrs["vocab_size"] = len(words_out)
        f.attrs["alphabet"] = ALPHABET
        f.attrs["char_order"] = "reversed"
        f.attrs["num_bad_rows"] = stats["bad"]
        if not args.no_sha256:
            f.attrs["source_sha256"] = sha256_of(args.input)
    os.replace(tmp, args.output)
    seconds = time.time() - start
    if not args.quiet:
        print(f"peer: {n} rows ({stats['bad']} bad) from {size / 1e6:.1f} MB in {seconds:.2f} s "
              f"(vocabulary pass {pass1:.2f} s): {size / 1e6 / seconds:.1f} MB/s, {n / seconds:.0f} rows/s; "
              f"vocabulary {len(words_out)} ids of {len(counter)} distinct words; "
              f"per class {dict(sorted(class_counts.items()))}")


if __name__ == "__main__":
    sys.exit(main())
