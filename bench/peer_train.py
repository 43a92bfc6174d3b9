#!/usr/bin/python3
"""Train a PyTorch peer model (bench/peer_models.py, peer_word_models.py) on textscale HDF5 files.

The reference for textscale's trainer: same models, same data, same optimisation semantics.

- Data: files written by `textscale preprocess` (docs/hdf5-schema.md), read whole into memory:
  `labels` int32 [N] and, for the character models (crepe-*, vdcnn-*), `chars` uint8 [N, L]; for
  the word models (bilstm), `words` int32 [N, W] and `word_lengths` int32 [N]. The number of
  classes is the larger `num_classes` attribute of the two files. A word model's vocabulary size
  is the training file's `vocab_size` unless --vocab-size says otherwise (every id of both files
  must be below it).
- Each epoch visits the training rows in a fresh random permutation (numpy's default_rng seeded
  with --seed, drawn once per epoch) in batches of --batch-size; the last, partial batch is kept.
- --bucket-by-length (word models): the epoch's permutation is then stably sorted by
  `word_lengths` (rows of one length stay in random order), cut into batches of --batch-size
  from the shortest rows up (the last, partial batch holds the longest), and the batches are
  visited in a random order (a second numpy permutation, of the batch count, drawn right after
  the first). Deterministic for --seed, resumable.
- --truncate-batch (word models): each batch's `words` are cut to the batch's longest row before
  the forward pass. Exact: the LSTM reads each row's real words only. Evaluation always reads the
  rows in length order and truncates (the same result, faster).
- Loss: softmax cross-entropy, averaged over the batch.
- Optimiser: torch.optim.SGD (momentum m, dampening 0, not Nesterov: v = m v + g, w -= lr v) or
  torch.optim.Adam (betas 0.9, 0.999, eps 1e-8). --weight-decay adds wd * w to every parameter's
  gradient (biases, BatchNorm and the embedding included). The embedding's gradient is dense.
- --clip-norm X (0: off): before each optimiser step the gradients of all trainable parameters
  (of the loss, before weight decay) are scaled by min(1, X / (norm + 1e-6)), norm being their
  global L2 norm (torch.nn.utils.clip_grad_norm_).
- Schedule: constant, or step: the learning rate of epoch e (1-based) is
  lr * step_factor ** ((e - 1) // step_epochs).
- Weights: torch.manual_seed(--seed) before the model is built (also drives dropout).
- After each epoch the model is evaluated on the test file in eval mode (dropout off, BatchNorm
  running statistics) and one JSON line is appended to --metrics:
  {"epoch", "train_loss" (mean over the epoch's samples), "test_loss", "test_accuracy", "lr",
   "train_seconds" (training loop only), "train_cpu_seconds" (the process's CPU time in it: on a
   shared machine, less sensitive to the other load than the wall time), "samples_per_second"
   (training rows / train_seconds)}.
  A human-readable line goes to standard output.
- --valid FILE: evaluated after every epoch ("valid_loss", "valid_accuracy"); the weights of the
  epoch with the best validation accuracy (the earliest on ties, as textscale's best.h5) are kept,
  and after the last epoch they are evaluated on the test file ("best_epoch", "best_test_loss",
  "best_test_accuracy" in the last line).
- Word-model options: --embed-dim E, --hidden H, --pooling last|max|mean, --dropout P,
  --vocab-size V, --embed-init uniform|normal, --freeze-embeddings true|false, --embed-from
  FILE.vec (fastText vectors replace the embedding rows of the words they hold; `peer_train.py --export-tokens TRAIN.h5 TOKENS.txt`
  writes the training rows' words, one row per line, joined by spaces, for `fasttext skipgram`).
- --checkpoint FILE: written (atomically) after every epoch with the model, optimiser, random
  generators and best weights; an existing one is resumed from, so a stopped run continues at
  the next epoch and gives the same result as an uninterrupted one. The metrics file is then
  appended to, not overwritten.

Usage (with /usr/bin/python3: torch, numpy, h5py):

    /usr/bin/python3 bench/peer_train.py --model crepe-small --train runs/ag_train.h5 \\
        --test runs/ag_test.h5 --epochs 10 --batch-size 128 --lr 0.01 --momentum 0.9 \\
        --schedule step --step-epochs 3 --step-factor 0.5 --seed 1 --threads 2 \\
        --metrics runs/peer-crepe-small.jsonl

--limit-train N / --limit-test N use only the first N rows (for smoke tests).

Step-by-step comparison with textscale (bench/trajectory.sh):
- --init-from CKPT.h5 starts from the weights (and batch-norm statistics) of a textscale
  checkpoint instead of the seeded initialisation; `peer_train.py --export-init TEMPLATE.h5
  TARGET.h5 MODEL SEED [--shortcut]` writes PyTorch's seeded initial weights into a copy of a
  textscale checkpoint of that model (bench/accuracy.sh --paired starts both from it);
- --order textscale visits the rows in textscale's order for --seed (`--shuffle rows`: the same
  std::mt19937_64 Fisher-Yates permutation per epoch) instead of numpy's;
- --dropout P sets Crepe's dropout rate (0 removes the only other random numbers);
- --max-steps N stops after N optimiser steps, --step-log FILE writes each step's loss as a JSON
  line {"step", "loss"}, and --save-weights FILE.npz writes the final weights under textscale's
  tensor names.
--device cuda trains and evaluates on the GPU. Without h5py (a GPU machine with PyTorch's wheels
only), FILE.h5 is read from FILE.npz, which `peer_train.py --export-npz FILE.h5` writes where h5py
is installed (bench/accuracy.sh --prepare-only does it; character models only). The
comparison with textscale (--init-from, --export-init, --save-weights) is for the character
models only, for now.

Word model example (results/bilstm-prototype.md):

    /usr/bin/python3 bench/peer_train.py --model bilstm --train runs/ag_train.h5 \\
        --test runs/ag_test.h5 --epochs 5 --batch-size 64 --optimizer adam --lr 0.002 \\
        --bucket-by-length --truncate-batch --seed 1 --threads 2 --metrics runs/bilstm.jsonl
"""

import argparse
import copy
import json
import math
import os
import shutil
import sys
import time

import numpy as np

try:
    import h5py
except ImportError:  # read the .npz copies instead
    h5py = None

try:
    import torch
    import torch.nn.functional as F

    from peer_models import (MODEL_NAMES, build_model, count_parameters, from_textscale_layout,
                             textscale_tensor_pairs, to_textscale_layout)
    from peer_word_models import (EMBED_INITS, POOLINGS, WORD_MODEL_NAMES, build_word_model,
                                  load_embedding)
    TORCH_MISSING = None
except ImportError as error:  # --export-npz needs numpy and h5py only
    torch = None
    TORCH_MISSING = error

MASK64 = (1 << 64) - 1


class MT19937_64:
    """std::mt19937_64 (C++11 [rand.predef]); numpy has only the 32-bit Mersenne Twister. Written
    out so that the peer can visit rows in textscale's order."""

    N, M = 312, 156

    def __init__(self, seed):
        self.state = [seed & MASK64]
        for i in range(1, self.N):
            previous = self.state[-1]
            self.state.append((6364136223846793005 * (previous ^ (previous >> 62)) + i) & MASK64)
        self.index = self.N

    def _twist(self):
        state = self.state
        for i in range(self.N):
            y = (state[i] & 0xFFFFFFFF80000000) | (state[(i + 1) % self.N] & 0x7FFFFFFF)
            state[i] = state[(i + self.M) % self.N] ^ (y >> 1) ^ (0xB5026F5AA96619E9 if y & 1 else 0)
        self.index = 0

    def __call__(self):
        if self.index >= self.N:
            self._twist()
        y = self.state[self.index]
        self.index += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000
        y ^= (y << 37) & 0xFFF7EEE000000000
        return (y ^ (y >> 43)) & MASK64


def textscale_order(rows, seed, epoch):
    """textscale's row order of a 0-based epoch (src/train/sharding.cpp, --shuffle rows)."""
    rng = MT19937_64((seed * 0x9E3779B97F4A7C15 + epoch + 1) & MASK64)
    order = list(range(rows))
    for i in range(rows - 1, 0, -1):
        bound = i + 1
        limit = MASK64 - MASK64 % bound
        draw = rng()
        while draw >= limit:
            draw = rng()
        j = draw % bound
        order[i], order[j] = order[j], order[i]
    return np.array(order, dtype=np.int64)


def _check_mt19937_64():
    """The C++ standard's check: the 10000th output of a default-constructed mt19937_64."""
    rng = MT19937_64(5489)
    for _ in range(9999):
        rng()
    assert rng() == 9981545732273789042, "MT19937_64 does not match std::mt19937_64"


def load_textscale_weights(model, path):
    """Copies a textscale checkpoint's parameters and batch-norm statistics into the model."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") not in (b"textscale-checkpoint", "textscale-checkpoint"):
            sys.exit(f"error: {path}: not a textscale checkpoint")
        for group, state in (("parameters", False), ("state", True)):
            try:
                pairs = textscale_tensor_pairs(model, list(f[group].keys()), state)
            except ValueError as e:
                sys.exit(f"error: {path}: {group}: {e}")
            with torch.no_grad():
                for name, tensor in pairs:
                    value = torch.from_numpy(f[group][name][...])
                    if tuple(value.shape) != tuple(tensor.shape):
                        sys.exit(f"error: {path}: {group}/{name} has shape {tuple(value.shape)}, "
                                 f"the PyTorch tensor {tuple(tensor.shape)}")
                    tensor.copy_(from_textscale_layout(model, tensor, value).to(tensor.dtype))


def export_init(template, target, model_name, seed, shortcut):
    """Writes the PyTorch model's seeded initial weights (and batch-norm statistics) into a copy of
    a textscale checkpoint of the same model, for `textscale train --init-from TARGET`."""
    with h5py.File(template, "r") as f:
        num_classes = int(f.attrs["num_classes"]) if "num_classes" in f.attrs else None
    if num_classes is None:
        sys.exit(f"error: {template}: no num_classes attribute (not a textscale checkpoint?)")
    torch.manual_seed(seed)
    model = build_model(model_name, num_classes, shortcut=shortcut)
    temporary = target + ".tmp"
    shutil.copyfile(template, temporary)
    with h5py.File(temporary, "r+") as f:
        for group, state in (("parameters", False), ("state", True)):
            for name, tensor in textscale_tensor_pairs(model, list(f[group].keys()), state):
                value = to_textscale_layout(model, tensor).numpy()
                if f[group][name].shape != value.shape:
                    sys.exit(f"error: {template}: {group}/{name} has shape {f[group][name].shape}, "
                             f"the PyTorch tensor {value.shape}")
                f[group][name][...] = value
    os.replace(temporary, target)
    print(f"{model_name} seed {seed}: PyTorch's initial weights -> {target}")


def save_textscale_weights(model, template, target):
    """Writes the model's parameters to TARGET (.npz) under the names of a textscale checkpoint."""
    with h5py.File(template, "r") as f:
        pairs = textscale_tensor_pairs(model, list(f["parameters"].keys()))
    np.savez(target, **{name: to_textscale_layout(model, tensor).numpy() for name, tensor in pairs})


class Split:
    """One file's rows in memory: `inputs` (chars uint8 [N, L] or words int32 [N, W]), `lengths`
    (word_lengths as int64 [N]; None for chars), `labels` int64 [N], `num_classes`, and for words
    the file's `vocab_size` attribute and the largest id the rows hold (`max_id`)."""

    def __init__(self, inputs, lengths, labels, num_classes, vocab_size=0):
        self.inputs, self.lengths, self.labels = inputs, lengths, labels
        self.num_classes, self.vocab_size = num_classes, vocab_size
        self.max_id = int(inputs.max()) if lengths is not None and inputs.size else 0

    def __len__(self):
        return len(self.labels)

    def batch(self, index, truncate, device):
        """(inputs, lengths or None, labels) tensors of the rows `index`; with `truncate`, word
        rows are cut to the longest of them (at least one column)."""
        x = self.inputs[index]
        lengths = None
        if self.lengths is not None:
            lengths = self.lengths[index]
            if truncate:
                x = x[:, :max(1, int(lengths.max()) if len(lengths) else 1)]
            lengths = torch.from_numpy(np.ascontiguousarray(lengths))
        x = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        y = torch.from_numpy(self.labels[index]).to(device)
        return x, lengths, y


def load_split(path, limit, words=False):
    """A Split from a textscale HDF5 file (or, for chars, its .npz copy when h5py is missing)."""
    if h5py is None or path.endswith(".npz"):
        if words:
            sys.exit(f"error: {path}: the word models read HDF5 files, which needs h5py")
        npz = os.path.splitext(path)[0] + ".npz"
        if not os.path.exists(npz):
            sys.exit(f"error: {path}: h5py is not installed and there is no {npz} "
                     "(write it with --export-npz where h5py is)")
        with np.load(npz) as f:
            n = len(f["labels"]) if limit is None else min(limit, len(f["labels"]))
            return Split(f["chars"][:n], None, f["labels"][:n].astype(np.int64),
                         int(f["num_classes"]))
    names = ("words", "word_lengths", "labels") if words else ("chars", "labels")
    with h5py.File(path, "r") as f:
        version = int(f.attrs.get("schema_version", -1))
        if version not in (1, 2):
            sys.exit(f"error: {path}: schema_version {version}, expected 1 or 2")
        for name in names:
            if name not in f:
                sys.exit(f"error: {path}: no '{name}' dataset (preprocessed with "
                         f"--no-{'words' if words else 'chars'}?)")
        n = f["labels"].shape[0] if limit is None else min(limit, f["labels"].shape[0])
        inputs = f[names[0]][:n]
        lengths = f["word_lengths"][:n].astype(np.int64) if words else None
        labels = f["labels"][:n].astype(np.int64)
        num_classes = int(f.attrs.get("num_classes", 0))
        vocab_size = int(f.attrs.get("vocab_size", 0)) if words else 0
    for name, rows in ((names[0], inputs), ("word_lengths", lengths)):
        if rows is not None and rows.shape[0] != labels.shape[0]:
            sys.exit(f"error: {path}: {rows.shape[0]} {name} rows but {labels.shape[0]} labels")
    if words and len(lengths) and not 0 <= lengths.min() <= lengths.max() <= inputs.shape[1]:
        sys.exit(f"error: {path}: word_lengths outside 0..{inputs.shape[1]}")
    num_classes = max(num_classes, int(labels.max()) + 1 if len(labels) else 0)
    return Split(inputs, lengths, labels, num_classes, vocab_size)


def read_vocab(path):
    """The `vocab` strings of a textscale HDF5 file."""
    with h5py.File(path, "r") as f:
        return list(f["vocab"].asstr()[:])


def export_tokens(path, target):
    """Writes the words of PATH's rows to TARGET, one row per line, joined by single spaces
    (`<unk>` for id 1; rows with no words give empty lines): fastText's input."""
    split = load_split(path, None, words=True)
    vocab = read_vocab(path)
    with open(target, "w", encoding="utf-8") as out:
        for row, length in zip(split.inputs, split.lengths):
            out.write(" ".join(vocab[i] for i in row[:length]) + "\n")
    print(f"{path} -> {target} ({len(split)} rows, {int(split.lengths.sum())} tokens)")


def export_npz(path):
    """Writes PATH's chars, labels and number of classes to PATH with the suffix .npz."""
    split = load_split(path, None)
    target = os.path.splitext(path)[0] + ".npz"
    temporary = target + ".tmp.npz"
    # Uncompressed: the GPU kit's xz compresses it better than zip would.
    np.savez(temporary, chars=split.inputs, labels=split.labels.astype(np.int32),
             num_classes=split.num_classes)
    os.replace(temporary, target)
    print(f"{path} -> {target} ({len(split)} rows)")


def learning_rate(args, epoch):
    """Learning rate of a 1-based epoch."""
    if args.schedule == "step":
        return args.lr * args.step_factor ** ((epoch - 1) // args.step_epochs)
    return args.lr


def run_model(model, x, lengths):
    """Logits of a batch: word models take the lengths too."""
    return model(x) if lengths is None else model(x, lengths)


def evaluate(model, split, batch_size, device="cpu"):
    """(mean loss, accuracy) over a split, in eval mode without gradients. Word rows are read in
    length order and each batch truncated to its longest row (exact, and fast)."""
    model.eval()
    total_loss = 0.0
    correct = 0
    rows = np.arange(len(split))
    if split.lengths is not None:
        rows = np.argsort(split.lengths, kind="stable")
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            x, lengths, y = split.batch(rows[start:start + batch_size], True, device)
            logits = run_model(model, x, lengths)
            total_loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
    return total_loss / len(split), correct / len(split)


def epoch_batches(order, batch_size, lengths=None, rng=None):
    """The row indices of an epoch's batches, in visiting order: `order` cut into batches, or,
    with `lengths` (bucketing), `order` stably sorted by length, cut, and the batches permuted by
    rng.permutation."""
    if lengths is None:
        return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    by_length = order[np.argsort(lengths[order], kind="stable")]
    batches = [by_length[start:start + batch_size] for start in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def train_epoch(model, optimizer, split, batches, log_every, device="cpu", truncate=False,
                clip_norm=0.0, step_log=None, first_step=1):
    """One pass over `batches` (arrays of row indices); returns the mean training loss over the
    samples visited."""
    model.train()
    total_loss = 0.0
    samples = 0
    trainable = [p for p in model.parameters() if p.requires_grad]
    for step, index in enumerate(batches, 1):
        x, lengths, y = split.batch(index, truncate, device)
        loss = F.cross_entropy(run_model(model, x, lengths), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, clip_norm)
        optimizer.step()
        total_loss += loss.item() * len(index)
        samples += len(index)
        if step_log:
            step_log.write(json.dumps({"step": first_step + step - 1, "loss": loss.item()}) + "\n")
        if log_every and step % log_every == 0:
            print(f"  batch {step}: loss {loss.item():.4f}", flush=True)
    return total_loss / max(samples, 1)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=MODEL_NAMES + WORD_MODEL_NAMES)
    p.add_argument("--train", required=True, help="training HDF5 file")
    p.add_argument("--test", required=True, help="test HDF5 file (see --test-each-epoch)")
    p.add_argument("--valid", help="validation HDF5 file: evaluated each epoch, best weights kept")
    p.add_argument("--checkpoint", help="resume from / write after every epoch this file")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eval-batch-size", type=int, default=None, help="default: --batch-size")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--clip-norm", type=float, default=0.0,
                   help="clip the gradients' global L2 norm to this (0: no clipping)")
    p.add_argument("--schedule", choices=("constant", "step"), default="constant")
    p.add_argument("--step-epochs", type=int, default=3)
    p.add_argument("--step-factor", type=float, default=0.5)
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--metrics", help="JSON lines file, one line per epoch (overwritten)")
    p.add_argument("--shortcut", action="store_true", help="VDCNN with shortcut connections")
    p.add_argument("--dropout", type=float, default=0.5, help="Crepe's or the BiLSTM's dropout")
    words = p.add_argument_group("word models (bilstm)")
    words.add_argument("--embed-dim", type=int, default=200, help="E")
    words.add_argument("--hidden", type=int, default=100, help="H, LSTM units per direction")
    words.add_argument("--pooling", choices=POOLINGS, default="last")
    words.add_argument("--vocab-size", type=int, default=0,
                       help="embedding rows (default: the training file's vocab_size)")
    words.add_argument("--embed-init", choices=EMBED_INITS, default="uniform",
                       help="uniform: U(-0.1, 0.1); normal: N(0, 1)")
    words.add_argument("--embed-from", help="fastText .vec file: initial vectors of its words")
    words.add_argument("--freeze-embeddings", choices=("true", "false"), default="false",
                       help="true: the embedding is not trained (textscale's --freeze-embeddings)")
    words.add_argument("--bucket-by-length", action="store_true",
                       help="batches of rows of similar length, visited in a random order")
    words.add_argument("--truncate-batch", action="store_true",
                       help="cut each training batch to its longest row (exact)")
    p.add_argument("--init-from", help="start from a textscale checkpoint's weights")
    p.add_argument("--order", choices=("numpy", "textscale"), default="numpy",
                   help="row order: numpy's permutation, or textscale's for the same --seed")
    p.add_argument("--max-steps", type=int, default=0, help="stop after N steps (0: no limit)")
    p.add_argument("--step-log", help="JSON lines file: every step's training loss")
    p.add_argument("--save-weights", help="write the final weights (.npz, textscale's names; "
                   "needs --init-from for the names)")
    p.add_argument("--limit-train", type=int, help="use only the first N training rows")
    p.add_argument("--limit-test", type=int, help="use only the first N test rows")
    p.add_argument("--log-every", type=int, default=0, help="print the loss every N batches")
    p.add_argument("--test-each-epoch", type=int, choices=(0, 1), default=1,
                   help="evaluate on the test file after every epoch (1) or after the last only (0)")
    args = p.parse_args()
    if args.batch_size < 1 or args.epochs < 1 or args.step_epochs < 1 or args.threads < 1:
        p.error("--batch-size, --epochs, --step-epochs and --threads must be positive")
    if args.max_steps and args.checkpoint:
        p.error("--max-steps stops mid-epoch, which the per-epoch --checkpoint cannot resume from")
    if args.max_steps < 0 or args.clip_norm < 0 or args.vocab_size < 0:
        p.error("--max-steps, --clip-norm and --vocab-size must not be negative")
    args.words = args.model in WORD_MODEL_NAMES
    if args.words and (args.init_from or args.save_weights):
        p.error("--init-from and --save-weights are for the character models")
    if not args.words and (args.bucket_by_length or args.truncate_batch or args.embed_from):
        p.error("--bucket-by-length, --truncate-batch and --embed-from are for the word models")
    if args.words and (args.embed_dim < 1 or args.hidden < 1):
        p.error("--embed-dim and --hidden must be positive")
    return args


def make_model(args, num_classes, train):
    """The seeded model of --model; a word model's vocabulary covers every id of the files."""
    if not args.words:
        return build_model(args.model, num_classes, shortcut=args.shortcut, dropout=args.dropout)
    vocab_size = args.vocab_size or train.vocab_size
    model = build_word_model(args.model, num_classes, vocab_size, args.embed_dim, args.hidden,
                             args.pooling, args.dropout, args.embed_init)
    if args.embed_from:
        replaced = load_embedding(model, read_vocab(args.train), args.embed_from)
        print(f"{args.embed_from}: vectors for {replaced} of {vocab_size} embedding rows",
              flush=True)
    if args.freeze_embeddings == "true":
        model.embedding.weight.requires_grad_(False)
    return model


def make_optimizer(args, model):
    trainable = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "sgd":
        return torch.optim.SGD(trainable, lr=args.lr, momentum=args.momentum,
                               weight_decay=args.weight_decay)
    return torch.optim.Adam(trainable, lr=args.lr, weight_decay=args.weight_decay)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--export-npz":
        export_npz(sys.argv[2])
        return
    if len(sys.argv) == 4 and sys.argv[1] == "--export-tokens":
        export_tokens(sys.argv[2], sys.argv[3])
        return
    if TORCH_MISSING is not None:
        sys.exit(f"error: {TORCH_MISSING}: training and --export-init need PyTorch (Debian: python3-torch)")
    if len(sys.argv) >= 6 and sys.argv[1] == "--export-init":
        # --export-init TEMPLATE.h5 TARGET.h5 MODEL SEED [--shortcut]
        export_init(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), "--shortcut" in sys.argv[6:])
        return
    args = parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    train = load_split(args.train, args.limit_train, args.words)
    test = load_split(args.test, args.limit_test, args.words)
    num_classes = max(train.num_classes, test.num_classes)
    valid = load_split(args.valid, args.limit_test, args.words) if args.valid else None
    if args.words:
        vocab_size = args.vocab_size or train.vocab_size
        for name, split in (("--train", train), ("--test", test), ("--valid", valid)):
            if split is not None and split.max_id >= vocab_size:
                sys.exit(f"error: {name} holds word id {split.max_id}, the vocabulary has "
                         f"{vocab_size} ids (--vocab-size)")

    torch.manual_seed(args.seed)
    model = make_model(args, num_classes, train)
    if args.init_from:
        load_textscale_weights(model, args.init_from)
    model = model.to(device)
    if args.order == "textscale":
        _check_mt19937_64()
    optimizer = make_optimizer(args, model)
    print(f"{args.model}{' (shortcut)' if args.shortcut else ''}: "
          f"{count_parameters(model):,d} parameters, {num_classes} classes, "
          f"{len(train)} training rows, {len(test)} test rows, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

    rng = np.random.default_rng(args.seed)
    best = {"epoch": 0, "accuracy": -1.0, "state": None}
    first_epoch = 1
    if args.checkpoint and os.path.exists(args.checkpoint):
        saved = torch.load(args.checkpoint, map_location=device)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["torch_rng"].cpu())
        if device.type == "cuda" and saved.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all([state.cpu() for state in saved["cuda_rng"]])
        rng.bit_generator.state = saved["numpy_rng"]
        best = saved["best"]
        first_epoch = saved["epoch"] + 1
        print(f"resumed from {args.checkpoint} after epoch {saved['epoch']}", flush=True)
    metrics = None
    if args.metrics:
        kept = []
        if first_epoch > 1 and os.path.exists(args.metrics):  # drop epochs after the checkpoint
            kept = [line for line in open(args.metrics)
                    if line.strip() and json.loads(line)["epoch"] < first_epoch]
        metrics = open(args.metrics, "w")
        metrics.writelines(kept)
    eval_batch = args.eval_batch_size or args.batch_size
    step_log = open(args.step_log, "w") if args.step_log else None
    batches_per_epoch = (len(train) + args.batch_size - 1) // args.batch_size
    for epoch in range(first_epoch, args.epochs + 1):
        done = (epoch - 1) * batches_per_epoch
        if args.max_steps and done >= args.max_steps:
            break
        lr = learning_rate(args, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        order = rng.permutation(len(train))  # drawn in either case: the same numpy stream
        if args.order == "textscale":
            order = textscale_order(len(train), args.seed, epoch - 1)
        batches = epoch_batches(order, args.batch_size,
                                train.lengths if args.bucket_by_length else None, rng)
        if args.max_steps:
            batches = batches[:args.max_steps - done]
        start, start_cpu = time.perf_counter(), time.process_time()
        train_loss = train_epoch(model, optimizer, train, batches, args.log_every, device,
                                 truncate=args.truncate_batch, clip_norm=args.clip_norm,
                                 step_log=step_log, first_step=done + 1)
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - start_cpu
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "test_loss": None,
            "test_accuracy": None,
            "lr": lr,
            "train_seconds": seconds,
            "train_cpu_seconds": cpu_seconds,
            "samples_per_second": len(train) / seconds,
        }
        line = f"epoch {epoch}: train loss {train_loss:.4f}"
        if valid is not None:
            record["valid_loss"], record["valid_accuracy"] = evaluate(model, valid, eval_batch,
                                                                      device)
            line += f", valid accuracy {100 * record['valid_accuracy']:.2f}%"
            if record["valid_accuracy"] > best["accuracy"]:
                best = {"epoch": epoch, "accuracy": record["valid_accuracy"],
                        "state": copy.deepcopy(model.state_dict())}
        if args.test_each_epoch or epoch == args.epochs:
            record["test_loss"], record["test_accuracy"] = evaluate(model, test, eval_batch, device)
            line += (f", test loss {record['test_loss']:.4f}, "
                     f"test accuracy {100 * record['test_accuracy']:.2f}%")
        if epoch == args.epochs and best["state"] is not None:
            final_state = copy.deepcopy(model.state_dict())
            model.load_state_dict(best["state"])
            record["best_epoch"] = best["epoch"]
            record["best_test_loss"], record["best_test_accuracy"] = evaluate(
                model, test, eval_batch, device)
            model.load_state_dict(final_state)
            line += (f"; best validation epoch {best['epoch']}: "
                     f"test accuracy {100 * record['best_test_accuracy']:.2f}%")
        print(f"{line}, lr {lr:g}, {seconds:.1f} s ({record['samples_per_second']:.1f} samples/s)",
              flush=True)
        if metrics:
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
        if not math.isfinite(train_loss):
            print("training loss is not finite; stopping", file=sys.stderr)
            break
        if args.checkpoint:
            temporary = args.checkpoint + ".tmp"
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "torch_rng": torch.get_rng_state(), "numpy_rng": rng.bit_generator.state,
                        "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
                        "best": best, "epoch": epoch}, temporary)
            os.replace(temporary, args.checkpoint)
    if metrics:
        metrics.close()
    if step_log:
        step_log.close()
    if args.save_weights:
        if not args.init_from:
            sys.exit("error: --save-weights needs --init-from (for textscale's tensor names)")
        save_textscale_weights(model.cpu(), args.init_from, args.save_weights)


if __name__ == "__main__":
    main()
