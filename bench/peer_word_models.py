#!/usr/bin/python3
"""PyTorch peers of textscale's word-level models: the BiLSTM classifier (`bilstm`).

Every model takes the `words` and `word_lengths` tensors of a textscale HDF5 file
(docs/hdf5-schema.md): ids (N, T) of any integer type, 0 = padding, 1 = <unk>, 2.. = vocabulary
words, and the real lengths (N,) (ids at columns >= length are ignored, whatever they hold); it
returns logits (N, num_classes). T may be the file's W or any width >= the longest row of the
batch (bench/peer_train.py --truncate-batch cuts each batch to its longest row: exact).

BiLSTM (V vocabulary ids, E = 200, H = 100, pooling `last`, dropout 0.5 by default)
  Embedding (V, E) over all ids (the rows of 0 and 1 are ordinary learned rows; row 0 is never
  read for a real word, so it receives no gradient)
  -> bidirectional LSTM, H units per direction, gates i, f, g, o (PyTorch's nn.LSTM):
       i = sigmoid(W_xi x + W_hi h + b_i), f = sigmoid(..f..), g = tanh(..g..), o = sigmoid(..o..)
       c' = f * c + i * g, h' = o * tanh(c'), starting from h = c = 0;
     each row runs over its own L real words only (pack_padded_sequence): the forward direction
     reads words 0 .. L-1, the backward direction L-1 .. 0; padding never enters a cell
  -> pooling over the L real steps of the (N, T, 2H) states:
       last: [forward state at word L-1, backward state at word 0] (h_n of the packed LSTM);
       max:  per channel the largest state over the L steps;
       mean: the sum over the L steps divided by L;
     a row with L = 0 pools to the zero vector (and passes no gradient back)
  -> Dropout -> Linear(2H, num_classes).

One LSTM bias per direction. nn.LSTM holds two (bias_ih and bias_hh) that always appear as a
sum; textscale keeps only the sum (include/textscale/engine/dims.h, RnnShape). Two trainable
copies of one bias would get the sum's gradient twice (SGD moves it at twice the learning rate;
Adam differently again), so here bias_hh is held at zero and not trained (requires_grad False:
optimisers, weight decay, gradient clipping and the parameter count skip it) and bias_ih is the
one bias. The parameter count is then V E + 2 (4H (E + H) + 4H) + (2H + 1) C, as textscale's.

Initialisation (torch.manual_seed first, then building the model, draws them in this order):
  embedding  U(-a, a), a = 0.1 by default (--embed-init uniform, drawn after nn.Embedding's own
             N(0, 1) draw; --embed-init normal keeps that N(0, 1); --embed-from replaces the
             rows of the words a fastText .vec file holds);
  LSTM       nn.LSTM's default: every weight and bias_ih ~ U(-1/sqrt(H), 1/sqrt(H)), drawn in
             the order weight_ih, weight_hh, bias_ih (bias_hh: drawn, then set to 0), forward
             direction then backward;
  linear     nn.Linear's default: weight U(-1/sqrt(2H), 1/sqrt(2H)) (kaiming_uniform_ with
             a = sqrt(5)), bias U(-1/sqrt(2H), 1/sqrt(2H)).
Why U(-0.1, 0.1) for the embedding: it is one well-defined draw that C++ reproduces without a
normal sampler, its inputs to the LSTM are small enough that the gates start near 0.5 whatever
E is (with N(0, 1) a gate's pre-activation starts with a standard deviation of about
sqrt(E / 3) / sqrt(H), 0.8 at E = 200, H = 100), and on AG News it trains much faster: Adam
87.5% after one epoch against 76.6% with N(0, 1) (results/bilstm-prototype.md).

Run it to print the trainable parameter count, or with --check to compare the model, in double,
with a packed bidirectional nn.LSTM holding the same weights (logits and every gradient, each
pooling, rows of length 0 .. T):

    /usr/bin/python3 bench/peer_word_models.py [--classes 4] [--vocab-size 50000]
        [--embed-dim 200] [--hidden 100] [--check]
"""

import argparse
import math

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

WORD_MODEL_NAMES = ("bilstm",)
POOLINGS = ("last", "max", "mean")
EMBED_INITS = ("uniform", "normal")
UNIFORM_EMBED_BOUND = 0.1


def reversal_index(lengths, t):
    """(N, T) time indices that reverse each row's first L steps and keep the rest in place:
    index[n, j] = L-1-j for j < L, j otherwise. Its own inverse."""
    steps = torch.arange(t, device=lengths.device)[None, :]
    last = lengths[:, None] - 1
    return torch.where(steps <= last, last - steps, steps)


class BiLSTM(nn.Module):
    """Embedding -> bidirectional LSTM over each row's real words -> pooling -> dropout -> linear.

    The two directions are two unidirectional nn.LSTM over padded batches: the forward one reads
    the rows as they are (padding at the end comes after every real step, so it cannot change
    them), the backward one reads each row's real words reversed (reversal_index), padding again
    last. Both equal a packed bidirectional nn.LSTM at every real step (`--check` compares them,
    gradients included); padding steps are computed and ignored. Built this way because the CPU
    backward of a packed LSTM (PyTorch 1.13) grows quadratically with the batch's length: one
    thread, forward and backward of 32 rows, 0.06 s (packed) and 0.13 s (this) at 40 words, but
    1.34 s and 0.48 s at 300 (the speed configuration); at 80 words and 64 rows, 0.35 s and 0.14 s.
    """

    def __init__(self, num_classes, vocab_size, embed_dim=200, hidden=100, pooling="last",
                 dropout=0.5, embed_init="uniform"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling '{pooling}' (one of {', '.join(POOLINGS)})")
        if embed_init not in EMBED_INITS:
            raise ValueError(f"unknown embedding initialisation '{embed_init}'")
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embed_dim)  # draws N(0, 1)
        if embed_init == "uniform":
            nn.init.uniform_(self.embedding.weight, -UNIFORM_EMBED_BOUND, UNIFORM_EMBED_BOUND)
        # Drawn in the order of a bidirectional nn.LSTM's parameters (forward, then reverse).
        self.lstm_forward = nn.LSTM(embed_dim, hidden, batch_first=True)
        self.lstm_backward = nn.LSTM(embed_dim, hidden, batch_first=True)
        with torch.no_grad():  # one bias per direction: see the module docstring
            for lstm in (self.lstm_forward, self.lstm_backward):
                lstm.bias_hh_l0.zero_().requires_grad_(False)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(2 * hidden, num_classes)

    def forward(self, words, lengths):
        """words (N, T) ids, lengths (N,) real words per row (0 <= L <= T) -> logits (N, C)."""
        n, t = words.shape
        words = words.long()
        lengths = lengths.to(words.device).long()
        reverse = reversal_index(lengths, t)  # (N, T)
        x = self.embedding(words)  # (N, T, E); one lookup: one dense gradient of the table
        y_f, _ = self.lstm_forward(x)  # (N, T, H), real at steps < L
        x_reversed = x.gather(1, reverse[:, :, None].expand_as(x))
        y_b, _ = self.lstm_backward(x_reversed)  # (N, T, H), step j: word L-1-j, for j < L
        if self.pooling == "last":
            # forward state at word L-1; backward state at word 0, its step L-1
            at = (lengths.clamp(min=1) - 1)[:, None, None].expand(n, 1, y_f.shape[2])
            pooled = torch.cat([y_f.gather(1, at)[:, 0], y_b.gather(1, at)[:, 0]], dim=1)
        else:
            # back to word order (the real steps; padding steps stay where they are)
            y_b = y_b.gather(1, reverse[:, :, None].expand_as(y_b))
            y = torch.cat([y_f, y_b], dim=2)  # (N, T, 2H)
            real = (torch.arange(t, device=y.device)[None, :] < lengths[:, None])[:, :, None]
            if self.pooling == "max":
                pooled = y.masked_fill(~real, -math.inf).max(dim=1).values
            else:
                pooled = y.masked_fill(~real, 0.0).sum(dim=1) / lengths.clamp(min=1)[:, None]
        pooled = torch.where((lengths > 0)[:, None], pooled, torch.zeros_like(pooled))
        return self.linear(self.dropout(pooled))


def packed_reference(model, words, lengths):
    """(logits, lstm): the same logits from a packed bidirectional nn.LSTM `lstm` holding copies of
    the model's LSTM weights (for --check; its gradients are the copies')."""
    lstm = nn.LSTM(model.lstm_forward.input_size, model.lstm_forward.hidden_size,
                   batch_first=True, bidirectional=True).to(model.linear.weight.dtype)
    with torch.no_grad():
        for suffix, source in (("", model.lstm_forward), ("_reverse", model.lstm_backward)):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(lstm, f"{name}_l0{suffix}").copy_(getattr(source, f"{name}_l0"))
    t = words.shape[1]
    steps = lengths.clamp(min=1)
    packed = pack_padded_sequence(model.embedding(words.long()), steps, batch_first=True,
                                  enforce_sorted=False)
    states, (h_n, _) = lstm(packed)
    if model.pooling == "last":
        pooled = torch.cat([h_n[0], h_n[1]], dim=1)
    else:
        y, _ = pad_packed_sequence(states, batch_first=True, total_length=t)
        real = (torch.arange(t)[None, :] < lengths[:, None])[:, :, None]
        if model.pooling == "max":
            pooled = y.masked_fill(~real, -math.inf).max(dim=1).values
        else:
            pooled = y.sum(dim=1) / steps[:, None]
    pooled = torch.where((lengths > 0)[:, None], pooled, torch.zeros_like(pooled))
    return model.linear(model.dropout(pooled)), lstm


def check(pooling):
    """(max |logit difference|, max |gradient difference|) between BiLSTM and packed_reference,
    in double, on rows of random lengths (0 and the full width included)."""
    torch.manual_seed(0)
    model = BiLSTM(3, 50, embed_dim=7, hidden=5, pooling=pooling, dropout=0.0).double()
    words = torch.randint(0, 50, (6, 9))
    lengths = torch.tensor([9, 0, 4, 1, 7, 9])
    weights = torch.linspace(-1, 1, 6 * 3).double().view(6, 3)

    model.zero_grad()
    logits = model(words, lengths)
    (logits * weights).sum().backward()
    ours = [model.embedding.weight.grad.clone(), model.linear.weight.grad.clone()]
    for lstm in (model.lstm_forward, model.lstm_backward):
        ours += [getattr(lstm, f"{name}_l0").grad.clone()
                 for name in ("weight_ih", "weight_hh", "bias_ih")]

    model.zero_grad()
    reference, packed = packed_reference(model, words, lengths)
    (reference * weights).sum().backward()
    theirs = [model.embedding.weight.grad, model.linear.weight.grad]
    for suffix in ("", "_reverse"):
        theirs += [getattr(packed, f"{name}_l0{suffix}").grad
                   for name in ("weight_ih", "weight_hh", "bias_ih")]
    grad_error = max((a - b).abs().max().item() for a, b in zip(ours, theirs))
    return (logits - reference).abs().max().item(), grad_error


def read_vec(path):
    """{word: vector} from a fastText .vec text file (a "count dim" header line, then one
    "word v_1 .. v_dim" line per word)."""
    vectors = {}
    with open(path, encoding="utf-8") as f:
        count, dim = (int(v) for v in f.readline().split())
        for line in f:
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if len(parts) != dim + 1:
                raise ValueError(f"{path}: a line with {len(parts) - 1} values, expected {dim}")
            vectors[parts[0]] = np.asarray(parts[1:], dtype=np.float32)
    if len(vectors) != count:
        raise ValueError(f"{path}: {len(vectors)} words, the header says {count}")
    return vectors


def load_embedding(model, vocab, path):
    """Copies the vectors of a .vec file into the embedding rows of the vocabulary's words (the
    others keep their initialisation); returns how many rows were replaced."""
    vectors = read_vec(path)
    table = model.embedding.weight
    replaced = 0
    with torch.no_grad():
        for index, word in enumerate(vocab[:table.shape[0]]):
            vector = vectors.get(word)
            if vector is None:
                continue
            if vector.shape[0] != table.shape[1]:
                raise ValueError(f"{path}: {vector.shape[0]}-dimensional vectors, the embedding "
                                 f"has {table.shape[1]}")
            table[index] = torch.from_numpy(vector)
            replaced += 1
    return replaced


def build_word_model(name, num_classes, vocab_size, embed_dim=200, hidden=100, pooling="last",
                     dropout=0.5, embed_init="uniform"):
    """A freshly initialised word model by name; seed torch first for reproducible weights."""
    if name == "bilstm":
        return BiLSTM(num_classes, vocab_size, embed_dim, hidden, pooling, dropout, embed_init)
    raise ValueError(f"unknown word model '{name}' (one of {', '.join(WORD_MODEL_NAMES)})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=50000)
    parser.add_argument("--embed-dim", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--check", action="store_true",
                        help="compare with a packed nn.LSTM (double): logits and gradients")
    args = parser.parse_args()
    if args.check:
        for pooling in POOLINGS:
            logit_error, grad_error = check(pooling)
            print(f"{pooling:<5} max |logit difference| {logit_error:.2e}, "
                  f"max |gradient difference| {grad_error:.2e}")
            if max(logit_error, grad_error) > 1e-12:  # double: 2^-52 times a few dozen operations
                raise SystemExit("error: the BiLSTM differs from the packed nn.LSTM")
        return
    model = build_word_model("bilstm", args.classes, args.vocab_size, args.embed_dim, args.hidden)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"bilstm V={args.vocab_size} E={args.embed_dim} H={args.hidden} C={args.classes}: "
          f"{trainable:,d} trainable parameters")


if __name__ == "__main__":
    main()
