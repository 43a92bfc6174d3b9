#!/usr/bin/env python3
"""Deterministic synthetic Zhang et al. 2015 CSV corpus for the preprocessing benchmark.

Writes rows `"class","title","text"` (every field double-quoted, `""` for an inner quote, 1-based
class, LF line ends) shaped like Amazon Review Polarity (3.6M rows, about 1.6 GB):

- class: 1 or 2, uniform;
- title: 3-10 words, about 20-60 characters;
- text: a lognormal number of words (median about 75, i.e. about 420 bytes; mean about 460 bytes;
  capped near 1,000 bytes like Amazon's reviews);
- words: drawn from a Zipf (s = 1.0) distribution over about 200k words: a few hundred real
  English function/review words at the top ranks, then synthetic syllable words that grow
  longer with rank; about 1% of words carry a Latin-1 letter (é, ü, ñ, ...);
- separators: mostly a space, with sentence punctuation (the next word capitalised), `""` quotes,
  literal `\\n` escapes (the two characters backslash and n, as in Zhang's files), and a few
  non-ASCII separators (’s, — , …).

The output depends only on --rows and --seed (and this file). numpy does the work a chunk at a
time: a row is a sequence of "pieces" (words, separators, the CSV framing) and a chunk's bytes are
one gather out of a flat table of pieces, so ~1.5 GB takes about a minute or two.

Usage: gen_zhang_csv.py --rows 3600000 --out /tmp/textscale-bench/amazon_like.csv --seed 1
"""

import argparse
import os
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
author should back great used made book, found many while new through way little those
off long two worth thing another easy characters find buying disappointed nice pretty
bad better going know want say got while years each since both sound cd fun right give
different year received waste day series before old few set case life amazon where
without seems looking fit small although however item enjoyed highly works looks son
daughter kids gift version original last quite least actually problem order simply
feel far lot here us does down around thought write written look takes ordered part
enough nothing once anyone instead why help hard loved anything together whole size
probably high though every done next always real every fine large review reviews""".split()

ACCENTS = list("éèêëáàâäíïóôöúùüçñ")
ONSETS = ["", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v",
          "w", "z", "br", "ch", "cl", "cr", "dr", "fl", "fr", "gl", "gr", "pl", "pr", "sc", "sh",
          "sl", "sp", "st", "str", "th", "tr", "wh"]
NUCLEI = ["a", "e", "i", "o", "u", "ea", "ee", "ai", "ou", "oo", "io", "y"]
CODAS = ["", "", "", "n", "r", "s", "t", "l", "m", "nd", "ng", "nt", "rt", "st", "ck", "sh", "ll", "ss", "ble", "tion", "ing", "ed", "er", "ly"]

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
    (b".\\n", 0.004, True),  # Zhang's escaped line break: backslash, n
    (b".\\n\\n", 0.002, True),
    ("\u2019s ".encode(), 0.003, False),  # ’s
    (" \u2014 ".encode(), 0.0015, False),  # —
    ("\u2026 ".encode(), 0.0015, True),  # …
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


def make_vocabulary(size, rng):
    """`size` distinct words in rank order (rank 0 most frequent)."""
    words, seen = [], set()
    for w in COMMON:
        w = w.strip(",")
        if w not in seen:
            seen.add(w)
            words.append(w)
    # Synthetic words: syllable count grows with rank, so frequent words are short.
    n_syll_cap = 5
    attempts = 0
    while len(words) < size:
        attempts += 1
        rank = len(words)
        mean_syll = 1.2 + 2.6 * (np.log1p(rank) / np.log1p(size))
        k = int(np.clip(rng.poisson(mean_syll - 0.5) + 1, 1, n_syll_cap))
        w = "".join(ONSETS[rng.integers(len(ONSETS))] + NUCLEI[rng.integers(len(NUCLEI))] +
                    CODAS[rng.integers(len(CODAS))] for _ in range(k))
        if len(w) < 2 or len(w) > 18:
            continue
        if rng.random() < 0.01:  # a Latin-1 letter somewhere
            i = rng.integers(len(w))
            w = w[:i] + ACCENTS[rng.integers(len(ACCENTS))] + w[i + 1:]
        if w not in seen:
            seen.add(w)
            words.append(w)
        if attempts > size * 20:
            raise RuntimeError("could not draw enough distinct words")
    # A sprinkling of numbers in the middle ranks.
    for i, n in enumerate(["2", "3", "5", "10", "4", "20", "100", "1", "30", "15", "50", "2008", "12", "6"]):
        if n not in seen:
            words[300 + 37 * i] = n
    return words


class PieceTable:
    """Flat uint8 buffer of byte strings, with offsets and lengths."""

    def __init__(self):
        self.items = []

    def add(self, b):
        self.items.append(b)
        return len(self.items) - 1

    def freeze(self):
        self.lengths = np.array([len(b) for b in self.items], dtype=np.int64)
        self.offsets = np.zeros(len(self.items), dtype=np.int64)
        np.cumsum(self.lengths[:-1], out=self.offsets[1:])
        self.flat = np.frombuffer(b"".join(self.items), dtype=np.uint8)


def capitalize(w):
    return w[:1].upper() + w[1:] if w != "i" else "I"


def build_pieces(vocab):
    t = PieceTable()
    V = len(vocab)
    for w in vocab:
        t.add((capitalize(w) if w in ("i", "i'm") else w).encode())
    for w in vocab:  # capitalised variants: id + V
        t.add(capitalize(w).encode())
    text_sep = np.array([t.add(s) for s, _, _ in TEXT_SEPARATORS])
    text_sep_p = np.array([p for _, p, _ in TEXT_SEPARATORS])
    text_sep_end = np.array([e for _, _, e in TEXT_SEPARATORS])
    title_sep = np.array([t.add(s) for s, _, _ in TITLE_SEPARATORS])
    title_sep_p = np.array([p for _, p, _ in TITLE_SEPARATORS])
    title_sep_end = np.array([e for _, _, e in TITLE_SEPARATORS])
    label = np.array([t.add(('"%d","' % c).encode()) for c in (1, 2)])
    mid = t.add(b'","')
    ends = np.array([t.add(e + b'"\n') for e in END_OF_TEXT])
    t.freeze()
    return dict(table=t, V=V,
                text_sep=text_sep, text_sep_cdf=np.cumsum(text_sep_p / text_sep_p.sum()),
                text_sep_end=text_sep_end,
                title_sep=title_sep, title_sep_cdf=np.cumsum(title_sep_p / title_sep_p.sum()),
                title_sep_end=title_sep_end,
                label=label, mid=mid, ends=ends, ends_cdf=np.cumsum(END_WEIGHTS) / np.sum(END_WEIGHTS))


def draw(cdf, rng, n):
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def chunk_bytes(n, P, word_cdf, rng):
    """The CSV bytes of `n` rows."""
    t = P["table"]
    V = P["V"]
    labels = rng.integers(0, 2, n)
    nt = rng.integers(3, 11, n)  # title words
    # Text words: lognormal, median ~75 words (~420 bytes), capped near 1,000 bytes.
    nw = np.clip(np.rint(rng.lognormal(np.log(75.0), 0.55, n)), 2, 185).astype(np.int64)
    per_row = 2 * nt + 2 * nw + 1  # label, title words+seps, mid, text words+seps, end
    T = int(per_row.sum())
    row_start = np.zeros(n, dtype=np.int64)
    np.cumsum(per_row[:-1], out=row_start[1:])
    rel = np.arange(T, dtype=np.int64) - np.repeat(row_start, per_row)
    ntr = np.repeat(nt, per_row)
    seq = np.empty(T, dtype=np.int64)

    # Framing pieces.
    seq[row_start] = P["label"][labels]
    seq[row_start + 2 * nt] = P["mid"]
    seq[row_start + per_row - 1] = P["ends"][draw(P["ends_cdf"], rng, n)]

    in_title = (rel >= 1) & (rel <= 2 * ntr - 1)
    in_text = (rel >= 2 * ntr + 1) & (rel < np.repeat(per_row, per_row) - 1)
    # Position inside the field: even = word, odd = separator.
    field_pos = np.where(in_title, rel - 1, rel - 2 * ntr - 1)
    is_word = (in_title | in_text) & (field_pos % 2 == 0)
    is_tsep = in_title & (field_pos % 2 == 1)
    is_xsep = in_text & (field_pos % 2 == 1)

    word_pos = np.flatnonzero(is_word)
    words = np.searchsorted(word_cdf, rng.random(word_pos.size), side="right")
    np.minimum(words, V - 1, out=words)

    tsep_pos = np.flatnonzero(is_tsep)
    ts = draw(P["title_sep_cdf"], rng, tsep_pos.size)
    seq[tsep_pos] = P["title_sep"][ts]
    xsep_pos = np.flatnonzero(is_xsep)
    xs = draw(P["text_sep_cdf"], rng, xsep_pos.size)
    seq[xsep_pos] = P["text_sep"][xs]

    # Capitalise a field's first word, a word after a sentence end, and ~40% of title words.
    cap = np.zeros(T, dtype=bool)
    cap[tsep_pos + 1] = P["title_sep_end"][ts]
    cap[xsep_pos + 1] = P["text_sep_end"][xs]
    cap[row_start + 1] = True
    cap[row_start + 2 * nt + 1] = True
    cap_w = cap[word_pos] | (in_title[word_pos] & (rng.random(word_pos.size) < 0.4))
    seq[word_pos] = words + V * cap_w

    # Gather the bytes.
    lens = t.lengths[seq]
    total = int(lens.sum())
    out_start = np.zeros(T, dtype=np.int64)
    np.cumsum(lens[:-1], out=out_start[1:])
    index = np.repeat(t.offsets[seq] - out_start, lens) + np.arange(total, dtype=np.int64)
    return t.flat[index].tobytes()


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
    rng = np.random.default_rng(args.seed)
    vocab = make_vocabulary(args.vocab, rng)
    P = build_pieces(vocab)
    ranks = np.arange(1, len(vocab) + 1, dtype=np.float64)
    weights = 1.0 / (ranks + 1.7) ** args.zipf  # Zipf-Mandelbrot
    word_cdf = np.cumsum(weights / weights.sum())

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    written = 0
    rows = 0
    with open(tmp, "wb", buffering=0) as f:
        while rows < args.rows:
            n = min(args.chunk_rows, args.rows - rows)
            data = chunk_bytes(n, P, word_cdf, rng)
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
