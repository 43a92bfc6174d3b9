#!/usr/bin/env python3
"""Deterministic synthetic Zhang et al. 2015 CSV corpus for the preprocessing benchmark.

Writes rows `"class","title","text"` (every field double-quoted, `""` for an inner quote, 1-based
class, LF line ends) shaped like Amazon Review Polarity (3.6M rows, about 1.6 GB):

- class: 1 or 2, uniform;
- title: 3-9 words, 15-55 characters (median 34);
- text: a lognormal number of words (median 62 words; bytes: median ~370, mean ~415, 95th
  percentile ~840, capped near 1,100 like Amazon's reviews); about 460 bytes a row in all;
- words: drawn from a Zipf (s = 1.0) distribution over about 200k words: a few hundred real
  English function/review words at the top ranks, then synthetic syllable words that grow
  longer with rank; about 0.3% of words carry a Latin-1 letter (é, ü, ñ, ...);
- separators: mostly a space, with sentence punctuation (the next word capitalised), `""` quotes,
  literal `\\n` escapes (the two characters backslash and n, as in Zhang's files), and a few
  non-ASCII separators (’s, — , …). About 40% of rows hold a `""`, 18% a `\\n`, 30% non-ASCII.

The output depends only on --rows, --seed, --vocab, --zipf and --chunk-rows (and this file). numpy does the work a chunk at a
time: a row is a sequence of "pieces" (words, separators, the CSV framing) and a chunk's bytes are
one gather out of a flat table of pieces, so 1.65 GB (3.6M rows) takes under a minute on a
fast core (about 40 MB/s on the 2-core dev VM).

Usage: gen_zhang_csv.py --rows 3600000 --out /tmp/textscale-bench/amazon_like.csv --seed 1
"""

import argparse
import math
import os
import random
import sys
import time

import numpy as np

# Top ranks: real words, so the head of the vocabulary looks like English reviews.
COMMON = """the i and a to it of is this for in that was you my not with but on have
book are be as one so they all very at great good if just like an or can from me would
had read will has out about what time there more your get movie do no we up product
when only use really well were also because than which he some don't it's them after much
first other her by love buy even best work how album could been any better into music
story little these his would did quality bought make think money its then well ever too
book's i'm she who same never reading price recommend still again does people over
author should back great used made found many while new through way little those
off long two worth thing another easy characters find buying disappointed nice pretty
bad better going know want say got while years each since both sound cd fun right give
different year received waste day series before old few set case life amazon where
without seems looking fit small although however item enjoyed highly works looks son
daughter kids gift version original last quite least actually problem order simply
feel far lot here us does down around thought write written look takes ordered part
enough nothing once anyone instead why help hard loved anything together whole size
probably high though every done next always real every fine large review reviews""".split()

ACCENTS = list("éèêëáàâäíïóôöúùüçñ")
ONSETS = ["b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w",
          "b", "c", "d", "g", "l", "m", "n", "p", "r", "s", "t", "", "", "", "br", "ch", "cl",
          "cr", "dr", "fl", "fr", "gr", "pl", "pr", "sh", "sp", "st", "th", "tr", "wh", "j", "qu", "z"]
NUCLEI = ["a", "e", "i", "o", "u", "a", "e", "i", "o", "e", "ea", "ee", "ai", "ou", "oo", "y"]
CODAS = ["n", "r", "s", "t", "l", "m", "nd", "ng", "nt", "rt", "st", "ck", "ll", "ss", "x", "p"]
SUFFIXES = ["s", "ed", "ing", "er", "ly", "tion", "ness", "able", "ment", "es", "y", "ful"]

# Separators between words: (bytes as written in the CSV field, weight, ends a sentence).
TEXT_SEPARATORS = [
    (b" ", 0.855, False),
    (b", ", 0.045, False),
    (b". ", 0.050, True),
    (b"! ", 0.008, True),
    (b"? ", 0.004, True),
    (b"... ", 0.004, True),
    (b" - ", 0.004, False),
    (b": ", 0.002, False),
    (b" (", 0.002, False),
    (b") ", 0.002, False),
    (b' ""', 0.004, False),  # an inner quote, doubled in the CSV
    (b'"" ', 0.004, False),
    (b".\\n", 0.002, True),  # Zhang's escaped line break: backslash, n
    (b".\\n\\n", 0.001, True),
    ("\u2019s ".encode(), 0.002, False),  # ’s
    (" \u2014 ".encode(), 0.0008, False),  # —
    ("\u2026 ".encode(), 0.0008, True),  # …
    (b" & ", 0.001, False),
    (b"/", 0.001, False),
    (b" $", 0.001, False),
    (b"% ", 0.001, False),
]
TITLE_SEPARATORS = [
    (b" ", 0.90, False),
    (b"! ", 0.03, True),
    (b": ", 0.03, False),
    (b", ", 0.02, False),
    (b" - ", 0.015, False),
    (b"... ", 0.005, True),
]
END_OF_TEXT = [b"", b".", b"!", b"!!", b"?", b"..."]  # the text's last word is followed by one of these
END_WEIGHTS = [0.25, 0.55, 0.12, 0.03, 0.02, 0.03]


def make_vocabulary(size, seed):
    """`size` distinct words in rank order (rank 0 most frequent)."""
    r = random.Random(seed)
    words, seen = [], set()
    for w in COMMON:
        if w not in seen:
            seen.add(w)
            words.append(w)
    # Synthetic words, longer with rank (about 5 letters near rank 1,000, 7 in the tail).
    log_size = math.log(size)
    attempts = 0
    while len(words) < size:
        attempts += 1
        if attempts > size * 50:
            raise RuntimeError("could not draw enough distinct words")
        frac = math.log(len(words) + 1) / log_size
        target = min(15, max(2, round(r.gauss(2.2 + 4.8 * frac, 1.3))))
        w = ""
        while len(w) < target:
            w += r.choice(ONSETS) + r.choice(NUCLEI)
            if r.random() < 0.35:
                w += r.choice(CODAS)
        w = w[:target]
        if target >= 4 and r.random() < 0.25:
            suffix = r.choice(SUFFIXES)
            w = w[:max(2, target - len(suffix))] + suffix
        if r.random() < 0.003:  # a Latin-1 letter somewhere
            i = r.randrange(len(w))
            w = w[:i] + r.choice(ACCENTS) + w[i + 1:]
        if w not in seen:
            seen.add(w)
            words.append(w)
    # A sprinkling of numbers in the middle ranks.
    for i, n in enumerate(["2", "3", "5", "10", "4", "20", "100", "1", "30", "15", "50", "2008", "12", "6"]):
        if n not in seen:
            seen.discard(words[300 + 37 * i])
            words[300 + 37 * i] = n
            seen.add(n)
    return words


class AliasSampler:
    """Walker/Vose alias table: O(1) draws from a discrete distribution."""

    def __init__(self, weights):
        p = np.asarray(weights, dtype=np.float64)
        n = p.size
        scaled = (p / p.sum() * n).tolist()
        prob = [0.0] * n
        alias = list(range(n))
        small = [i for i, x in enumerate(scaled) if x < 1.0]
        large = [i for i, x in enumerate(scaled) if x >= 1.0]
        while small and large:
            s, l = small.pop(), large.pop()
            prob[s] = scaled[s]
            alias[s] = l
            scaled[l] -= 1.0 - scaled[s]
            (small if scaled[l] < 1.0 else large).append(l)
        for i in small + large:
            prob[i] = 1.0
        self.n = n
        self.prob = np.array(prob)
        self.alias = np.array(alias, dtype=np.int32)

    def __call__(self, rng, size):
        i = rng.integers(0, self.n, size, dtype=np.int32)
        return np.where(rng.random(size) < self.prob[i], i, self.alias[i])


class PieceTable:
    """Byte strings in one flat uint8 buffer, with offsets and lengths, plus per-piece flags."""

    def __init__(self):
        self.items = []
        self.ends_sentence = []  # the next word is capitalised

    def add(self, b, ends_sentence=False):
        self.items.append(b)
        self.ends_sentence.append(ends_sentence)
        return len(self.items) - 1

    def freeze(self):
        self.lengths = np.array([len(b) for b in self.items], dtype=np.int32)
        self.offsets = np.zeros(len(self.items), dtype=np.int32)
        np.cumsum(self.lengths[:-1], out=self.offsets[1:])
        self.flat = np.frombuffer(b"".join(self.items), dtype=np.uint8)
        self.ends_sentence = np.array(self.ends_sentence, dtype=bool)


def capitalize(w):
    return w[:1].upper() + w[1:]


def build_pieces(vocab):
    """Pieces: V words, V capitalised words, separators, and the CSV framing. Every word is followed
    by exactly one piece: a separator inside a field, `","` after the title's last word, and after
    the text's last word an ending, `"` and LF, and the next row's `"class","` (the chunk's first
    row gets its `"class","` alone)."""
    t = PieceTable()
    V = len(vocab)
    for w in vocab:
        t.add((capitalize(w) if w in ("i", "i'm") else w).encode())
    for w in vocab:  # capitalised variants: id + V
        t.add(capitalize(w).encode())
    P = dict(table=t, V=V)
    for name, seps in (("text", TEXT_SEPARATORS), ("title", TITLE_SEPARATORS)):
        P[name + "_sep"] = np.array([t.add(b, e) for b, _, e in seps], dtype=np.int32)
        P[name + "_sep_sampler"] = AliasSampler([p for _, p, _ in seps])
    P["label"] = np.array([t.add(('"%d","' % c).encode(), True) for c in (1, 2)], dtype=np.int32)
    P["mid"] = t.add(b'","', True)
    # ends[k, j]: ending k, then nothing (j = 0) or the next row's class j (1, 2).
    P["ends"] = np.array([[t.add(e + b'"\n' + nxt, True) for nxt in (b"", b'"1","', b'"2","')]
                          for e in END_OF_TEXT], dtype=np.int32)
    P["ends_sampler"] = AliasSampler(END_WEIGHTS)
    t.freeze()
    return P


def chunk_bytes(n, P, word_sampler, rng):
    """The CSV bytes of `n` rows."""
    t = P["table"]
    V = P["V"]
    labels = rng.integers(0, 2, n)
    nt = rng.integers(3, 10, n)  # title words
    # Text words: lognormal, median ~62 words (~370 bytes, mean ~410), capped near 1,000 bytes.
    nw = np.clip(np.rint(rng.lognormal(np.log(62.0), 0.5, n)), 3, 175).astype(np.int64)
    per_row = nt + nw
    Wt = int(per_row.sum())
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(per_row[:-1], out=starts[1:])

    in_title = np.repeat(np.tile(np.array([True, False]), n), np.stack([nt, nw], axis=1).ravel())
    after = np.where(in_title,
                     P["title_sep"][P["title_sep_sampler"](rng, Wt)],
                     P["text_sep"][P["text_sep_sampler"](rng, Wt)])
    after[starts + nt - 1] = P["mid"]
    next_label = np.append(labels[1:] + 1, 0)
    after[starts + per_row - 1] = P["ends"][P["ends_sampler"](rng, n), next_label]

    words = word_sampler(rng, Wt)
    cap = np.empty(Wt, dtype=bool)
    cap[0] = True
    cap[1:] = t.ends_sentence[after[:-1]]
    cap |= in_title & (rng.random(Wt) < 0.4)
    words += V * cap

    seq = np.empty(2 * Wt + 1, dtype=np.int32)
    seq[0] = P["label"][labels[0]]
    seq[1::2] = words
    seq[2::2] = after

    # Gather the bytes: index = cumsum of steps, 1 inside a piece, a jump at each piece start.
    lens = t.lengths[seq]
    offs = t.offsets[seq]
    out_start = np.zeros(seq.size, dtype=np.int64)
    np.cumsum(lens[:-1], out=out_start[1:])
    total = int(out_start[-1] + lens[-1])
    step = np.ones(total, dtype=np.int32)
    step[0] = offs[0]
    step[out_start[1:]] = offs[1:] - (offs[:-1] + lens[:-1]) + 1
    return t.flat[np.cumsum(step, dtype=np.int32)].tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=3_600_000, help="rows to write (default 3,600,000)")
    ap.add_argument("--out", required=True, help="output CSV path")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--vocab", type=int, default=200_000, help="distinct words (default 200,000)")
    ap.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of the word ranks (default 1.0)")
    ap.add_argument("--chunk-rows", type=int, default=20_000, help="rows generated per numpy chunk")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    if args.rows < 0 or args.vocab < 1000:
        ap.error("--rows must be >= 0 and --vocab >= 1000")

    start = time.time()
    vocab = make_vocabulary(args.vocab, args.seed)
    P = build_pieces(vocab)
    ranks = np.arange(1, len(vocab) + 1, dtype=np.float64)
    word_sampler = AliasSampler(1.0 / (ranks + 1.7) ** args.zipf)  # Zipf-Mandelbrot
    rng = np.random.default_rng(args.seed)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    written = 0
    rows = 0
    with open(tmp, "wb", buffering=0) as f:
        while rows < args.rows:
            n = min(args.chunk_rows, args.rows - rows)
            data = chunk_bytes(n, P, word_sampler, rng)
            f.write(data)
            written += len(data)
            rows += n
            if not args.quiet and (rows // args.chunk_rows) % 25 == 0:
                el = time.time() - start
                print(f"\r{rows:,} rows, {written / 1e6:,.0f} MB, {el:.0f} s", end="", file=sys.stderr, flush=True)
    os.replace(tmp, args.out)
    if not args.quiet:
        el = time.time() - start
        print(f"\r{args.out}: {rows:,} rows, {written:,} bytes ({written / rows if rows else 0:.0f} B/row), "
              f"{el:.1f} s, {written / 1e6 / max(el, 1e-9):.0f} MB/s", file=sys.stderr)


if __name__ == "__main__":
    main()
