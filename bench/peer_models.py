#!/usr/bin/python3
"""PyTorch peers of textscale's character-level models: Crepe (small, large) and VDCNN (9, 17, 29).

The definitions follow Zhang, Zhao and LeCun (2015) and Conneau et al. (2016) exactly as textscale
implements them, so the two can be compared for accuracy, speed and parameter count. Every model
takes the `chars` rows of a textscale HDF5 file: codes (N, T) of any integer type, 0 = padding or
unknown, 1..69 = the alphabet; it returns logits (N, num_classes).

Crepe (small: F = 256, hidden 1024, init std 0.05; large: F = 1024, hidden 2048, std 0.02)
  one-hot (N, 69, T): code c in 1..69 -> channel c-1, code 0 -> an all-zero column
  conv k7 -> ReLU -> maxpool 3/3 -> conv k7 -> ReLU -> maxpool 3/3
  -> (conv k3 -> ReLU) x 3 -> conv k3 -> ReLU -> maxpool 3/3        all convs F features, no padding
  -> flatten (T = 1014 gives length 34: 34 F) -> Linear H -> ReLU -> Dropout 0.5
  -> Linear H -> ReLU -> Dropout 0.5 -> Linear num_classes
  init: every weight and every bias ~ N(0, std).

VDCNN (depth 9, 17, 29: (1,1,1,1), (2,2,2,2), (5,5,2,2) conv blocks in the four stages)
  Embedding(70, 16), all 70 rows learned, init N(0, 1) -> (N, 16, T)
  -> temp conv 16 -> 64, k3 pad 1, with bias
  -> stage 64 -> pool -> stage 128 -> pool -> stage 256 -> pool -> stage 512
     conv block = (conv k3 pad 1 no bias -> BatchNorm1d -> ReLU) x 2; a stage's first conv maps the
     previous channel count to the stage's; pool = max pool k3 stride 2 pad 1
  -> k-max pooling, k = 8 over time (the 8 largest values per channel, kept in time order; among
     equal values the earlier time step wins) -> flatten (512 * 8 = 4096)
  -> Linear 2048 -> ReLU -> Linear 2048 -> ReLU -> Linear num_classes
  shortcut=True: a conv block's output (after its second ReLU) += its input, or, when the channel
     count changes, += BatchNorm1d(conv1x1(input)) (conv1x1 without bias).
  init: conv weights kaiming_normal_ (fan_in, ReLU gain sqrt(2)), conv biases 0; linear weights
     and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (Torch's default, as in the authors' code: with
     He init on the linear layers too, SGD at lr 0.01 diverges in the first steps);
     BatchNorm weight 1, bias 0, momentum 0.1, eps 1e-5.

Run it to print the trainable parameter count of every model (BatchNorm running statistics are
buffers, not parameters, and are not counted):

    /usr/bin/python3 bench/peer_models.py [--classes 4] [--shortcut]
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

ALPHABET_SIZE = 69  # codes 1..69; code 0 is padding or unknown
NUM_CODES = ALPHABET_SIZE + 1
CHAR_LENGTH = 1014

MODEL_NAMES = ("crepe-small", "crepe-large", "vdcnn-9", "vdcnn-17", "vdcnn-29")


class OneHot(nn.Module):
    """codes (N, T) -> float one-hot (N, 69, T); code 0 maps to an all-zero column."""

    def __init__(self):
        super().__init__()
        table = torch.zeros(NUM_CODES, ALPHABET_SIZE)
        table[1:] = torch.eye(ALPHABET_SIZE)
        self.register_buffer("table", table, persistent=False)

    def forward(self, codes):
        return F.embedding(codes.long(), self.table).transpose(1, 2).contiguous()


class Crepe(nn.Module):
    """Zhang et al. (2015) character CNN, 6 convolutions and 3 linear layers."""

    def __init__(self, num_classes, features, hidden, init_std, char_length=CHAR_LENGTH,
                 dropout=0.5):
        super().__init__()
        self.one_hot = OneHot()
        f = features
        self.convs = nn.Sequential(
            nn.Conv1d(ALPHABET_SIZE, f, 7), nn.ReLU(), nn.MaxPool1d(3, 3),
            nn.Conv1d(f, f, 7), nn.ReLU(), nn.MaxPool1d(3, 3),
            nn.Conv1d(f, f, 3), nn.ReLU(),
            nn.Conv1d(f, f, 3), nn.ReLU(),
            nn.Conv1d(f, f, 3), nn.ReLU(),
            nn.Conv1d(f, f, 3), nn.ReLU(), nn.MaxPool1d(3, 3),
        )
        t = ((char_length - 6) // 3 - 6) // 3
        t = (t - 8) // 3  # 1014 -> 34
        self.classifier = nn.Sequential(
            nn.Linear(t * f, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        for p in self.parameters():
            nn.init.normal_(p, 0.0, init_std)

    def forward(self, codes):
        x = self.convs(self.one_hot(codes))  # (N, F, 34)
        return self.classifier(x.flatten(1))


def kmax_pool(x, k):
    """(N, C, T) -> (N, C, k): the k largest values of each channel in time order.

    A stable descending sort ranks equal values by time, so among ties the earlier time step is
    kept. Gradients flow to the kept positions only.
    """
    order = torch.sort(x, dim=2, descending=True, stable=True).indices[:, :, :k]
    kept, _ = torch.sort(order, dim=2)
    return torch.gather(x, 2, kept)


class ConvBlock(nn.Module):
    """(conv k3 pad 1 -> BN -> ReLU) x 2, with an optional shortcut around the pair."""

    def __init__(self, in_channels, channels, shortcut):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(in_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm1d(channels), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm1d(channels), nn.ReLU(),
        )
        self.shortcut = shortcut
        self.projection = None
        if shortcut and in_channels != channels:
            self.projection = nn.Sequential(
                nn.Conv1d(in_channels, channels, 1, bias=False), nn.BatchNorm1d(channels))

    def forward(self, x):
        y = self.body(x)
        if self.shortcut:
            y = y + (x if self.projection is None else self.projection(x))
        return y


VDCNN_BLOCKS = {9: (1, 1, 1, 1), 17: (2, 2, 2, 2), 29: (5, 5, 2, 2)}
VDCNN_CHANNELS = (64, 128, 256, 512)


class VDCNN(nn.Module):
    """Conneau et al. (2016) very deep CNN over a learned 16-dimensional character embedding."""

    def __init__(self, num_classes, depth, shortcut=False, k=8):
        super().__init__()
        self.k = k
        self.embedding = nn.Embedding(NUM_CODES, 16)
        layers = [nn.Conv1d(16, VDCNN_CHANNELS[0], 3, padding=1)]
        in_channels = VDCNN_CHANNELS[0]
        for stage, (channels, blocks) in enumerate(zip(VDCNN_CHANNELS, VDCNN_BLOCKS[depth])):
            if stage > 0:
                layers.append(nn.MaxPool1d(3, stride=2, padding=1))
            for _ in range(blocks):
                layers.append(ConvBlock(in_channels, channels, shortcut))
                in_channels = channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(VDCNN_CHANNELS[-1] * k, 2048), nn.ReLU(),
            nn.Linear(2048, 2048), nn.ReLU(),
            nn.Linear(2048, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.in_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.uniform_(m.bias, -bound, bound)
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.momentum = 0.1
                m.eps = 1e-5
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, 1.0)

    def forward(self, codes):
        x = self.embedding(codes.long()).transpose(1, 2)  # (N, 16, T)
        x = self.features(x)  # (N, 512, T / 8 rounded up)
        return self.classifier(kmax_pool(x, self.k).flatten(1))


def build_model(name, num_classes, shortcut=False, dropout=0.5):
    """A freshly initialised model by name; seed torch first for reproducible weights. `dropout`
    is Crepe's rate (VDCNN has no dropout)."""
    if name == "crepe-small":
        return Crepe(num_classes, features=256, hidden=1024, init_std=0.05, dropout=dropout)
    if name == "crepe-large":
        return Crepe(num_classes, features=1024, hidden=2048, init_std=0.02, dropout=dropout)
    if name.startswith("vdcnn-") and int(name[6:]) in VDCNN_BLOCKS:
        return VDCNN(num_classes, int(name[6:]), shortcut=shortcut)
    raise ValueError(f"unknown model '{name}' (one of {', '.join(MODEL_NAMES)})")


def _textscale_key(name):
    """Sort key that puts a textscale checkpoint's tensor names ("input.weights", "3.body.1.gamma",
    "3.shortcut.0.weights", "state: 3.body.1.running_var") in the order of the peer's
    parameters() / buffers(): layers by index (the input layer first), a block's body before its
    shortcut, weights (gamma, table, running mean) before biases (beta, running variance)."""
    rank = {"input": -1, "body": 0, "shortcut": 1, "weights": 0, "gamma": 0, "table": 0,
            "running_mean": 0, "bias": 1, "beta": 1, "running_var": 1}
    return [int(part) if part.isdigit() else rank[part] for part in name.split(".")]


def textscale_tensor_pairs(model, names, state=False):
    """[(textscale name, peer tensor)] for a textscale checkpoint's parameter (or, with state=True,
    batch-norm statistics) names, matched by position; raises ValueError on a count mismatch."""
    ours = sorted(names, key=_textscale_key)
    if state:
        theirs = [b for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var"))]
    else:
        theirs = list(model.parameters())
    if len(ours) != len(theirs):
        raise ValueError(f"{len(ours)} textscale tensors, {len(theirs)} in the PyTorch model")
    return list(zip(ours, theirs))


def flattened_linear(model):
    """(the Linear layer that reads the flattened convolution output, channels, length).

    textscale keeps activations time-major (N, T, C), so that layer's input index is t * C + c;
    PyTorch flattens (N, C, T) to c * T + t. A textscale weight (O, T * C) is therefore the PyTorch
    weight with its columns permuted: see to_textscale_layout / from_textscale_layout."""
    first = model.classifier[0]
    channels = VDCNN_CHANNELS[-1] if isinstance(model, VDCNN) else model.convs[0].out_channels
    return first, channels, first.in_features // channels


def from_textscale_layout(model, tensor, value):
    """A textscale checkpoint's value for `tensor`, in the PyTorch model's layout."""
    linear, channels, length = flattened_linear(model)
    if tensor is linear.weight:
        return value.reshape(-1, length, channels).transpose(1, 2).reshape(value.shape)
    return value


def to_textscale_layout(model, tensor):
    """The PyTorch tensor's value in textscale's layout (a detached CPU copy)."""
    value = tensor.detach().cpu()
    linear, channels, length = flattened_linear(model)
    if tensor is linear.weight:
        return value.reshape(-1, channels, length).transpose(1, 2).reshape(value.shape)
    return value


def count_parameters(model):
    """Trainable parameters; BatchNorm running mean and variance are buffers and not counted."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def print_parameter_counts(num_classes, shortcut=False):
    """Print one line per model: name and trainable parameter count."""
    for name in MODEL_NAMES:
        model = build_model(name, num_classes, shortcut=shortcut and name.startswith("vdcnn"))
        suffix = " (shortcut)" if shortcut and name.startswith("vdcnn") else ""
        print(f"{name + suffix:<22} {count_parameters(model):>12,d}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=4, help="number of classes (default 4)")
    parser.add_argument("--shortcut", action="store_true", help="VDCNN with shortcuts")
    args = parser.parse_args()
    print(f"trainable parameters, {args.classes} classes")
    print_parameter_counts(args.classes, args.shortcut)


if __name__ == "__main__":
    main()
