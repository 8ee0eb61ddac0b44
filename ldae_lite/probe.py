"""How good is a representation? The linear probe (MAE protocol) and a kNN probe, on frozen features.

The paper measures every step of its trajectory with MAE's linear probe (arXiv 2401.14404, §4.1 and
App. A): the frozen encoder's output is global-average-pooled, passed through a BatchNorm without
affine parameters, and a linear classifier is trained on top (90 epochs, cosine decay, no weight decay).
Here the features are extracted once (:func:`extract_features`; the pooling is the caller's, e.g.
``DiT.features``) and the head is trained on the stored tensors, which takes seconds instead of a pass
through the encoder per epoch.

Deviations from MAE's probe, all because the features are fixed tensors rather than augmented images:
- no augmentation (the paper's own default pre-training uses none either), so features are computed once;
- the BatchNorm uses the statistics of the whole training set, computed once, instead of per-batch
  statistics with a running average: the limit of MAE's large-batch (16384) BatchNorm;
- SGD with momentum 0.9 instead of LARS (one linear layer, so LARS's per-layer trust ratio is a single
  number); lr = base_lr x batch / 256 (MAE's scaling rule), half-cycle cosine decay to 0, no warmup;
- the base lr is chosen per feature set on held-out training features (:data:`LR_GRID`), because one lr
  does not suit every feature set: a fixed lr tuned on raw pixels under-fits a denoiser's features
  (results/lecture/levers.md, group 'probe'). The lecture and full budgets train for MAE's 90 epochs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as data_module
from . import validate
from .batching import batched

# Standardised features make raw pixels well conditioned: their probe hardly depends on the base lr. A
# denoiser's encoder features are not: the same frozen features probed at fixed base lrs from 0.01 to 1
# differ by points (results/lecture/levers.md, group 'probe'). One fixed lr would rank models by how easy
# they are to probe, so the lr is chosen per feature set, on a held-out tenth of the *training* features
# (the test set is never looked at), from LR_GRID. All candidate heads train together in one loop (see
# _train_heads), so the sweep costs about as much as one probe; the chosen lr is then used for a final
# head on all training features.
LR_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)  # base lrs (per 256 examples); raw photo-like pixels want the low end
VAL_FRACTION = 0.1
BATCH_SIZE = 256
EPOCHS = 30
KNN_K = 20
KNN_TEMPERATURE = 0.07  # weight exp(cos / T) per neighbour, as in the kNN monitor of InstDisc / DINO


@dataclass(frozen=True)
class ProbeResult:
    """What a linear probe measured. Accuracies in %."""

    accuracy: float  # top-1 on the test features
    train_accuracy: float
    epochs: int
    lr: float  # the actual (scaled) peak learning rate of the reported head
    batch_size: int
    seconds: float
    steps: int = 0
    n_train: int = 0
    n_test: int = 0
    lr_sweep: tuple = ()  # ((base lr, held-out top-1 %), ...) when the lr was chosen; () when it was given

    @property
    def base_lr(self) -> float:
        """The peak lr per 256 examples (MAE's scaling rule undone)."""
        return self.lr * 256 / self.batch_size


@torch.no_grad()
def extract_features(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int = 512,
                     device: str | torch.device | None = None) -> torch.Tensor:
    """Apply ``fn`` (a batch (B, ...) -> (B, F)) to all images in batches; returns (N, F) float32 on CPU.

    ``device``: where the batches go before ``fn`` sees them (None: leave them where ``images`` are).
    """
    if len(images) == 0:
        return torch.empty(0, 0)

    def features(batch: torch.Tensor) -> torch.Tensor:
        feats = fn(batch)
        if feats.ndim != 2 or len(feats) != len(batch):
            raise ValueError(f"feature function returned shape {tuple(feats.shape)}, expected ({len(batch)}, F)")
        return feats.float().cpu()

    return batched(features, images, batch_size, device=device)  # (N, F)


def raw_pixel_features(images: torch.Tensor) -> torch.Tensor:
    """The baseline every probe is compared to: the pixels themselves. (N, C, H, W) -> (N, C*H*W)."""
    return images.reshape(len(images), -1).float()


def subset_indices(n: int, limit: int | None, seed: int = 0) -> torch.Tensor:
    """A fixed random subset of ``limit`` of ``n`` indices (all of them, in order, when limit is None)."""
    limit = validate.optional_integer("limit", limit, low=1)
    if limit is None or limit >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit].sort().values


def _check(train_x, train_y, test_x, test_y, num_classes: int | None, probe: str) -> int:
    """Check a probe's features (finite, (N, F) with N >= 1 and the same F) and labels (integers in
    [0, num_classes), one per feature row). Returns num_classes (None: the largest label + 1)."""
    for name, x in (("train_x", train_x), ("test_x", test_x)):
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or len(x) < 1:
            raise validate.BadValue(f"{probe}: {name} must be features of shape (N, F) with N >= 1, got "
                                    f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        validate.finite(x, f"{probe}: {name} (features)")
    if train_x.shape[1] != test_x.shape[1]:
        raise validate.BadValue(f"{probe}: features must be (N, F) with the same F; got {tuple(train_x.shape)} "
                                f"and {tuple(test_x.shape)}")
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise validate.BadValue(f"{probe}: {len(train_x)} train features vs {len(train_y)} labels, "
                                f"{len(test_x)} test features vs {len(test_y)} labels")
    num_classes = validate.optional_integer("num_classes", num_classes, low=1)
    if num_classes is None:  # integers >= 0 first, then the largest one sets the count
        for name, y in (("train_y", train_y), ("test_y", test_y)):
            validate.labels(y, None, f"{probe}: {name}")
        num_classes = int(max(train_y.max(), test_y.max())) + 1
    for name, y in (("train_y", train_y), ("test_y", test_y)):
        validate.labels(y, num_classes, f"{probe}: {name}")
    return num_classes


def _settings(epochs, lr, batch_size, weight_decay, seed, base_lrs) -> tuple:
    """linear_probe's settings, checked: (epochs, lr, batch_size, weight_decay, seed, base_lrs)."""
    if lr is None and (isinstance(base_lrs, (str, bytes)) or not base_lrs):
        raise validate.BadValue(f"base_lrs={base_lrs!r} must be a non-empty tuple of positive learning rates")
    return (validate.integer("epochs", epochs, low=1), None if lr is None else validate.real("lr", lr, low=0.0,
                                                                                            low_open=True),
            validate.integer("batch_size", batch_size, low=1), validate.real("weight_decay", weight_decay, low=0.0),
            validate.seed(seed),
            tuple(validate.real(f"base_lrs[{i}]", b, low=0.0, low_open=True) for i, b in enumerate(base_lrs)))


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, *,
                 epochs: int = EPOCHS, lr: float | None = None, batch_size: int = BATCH_SIZE,
                 weight_decay: float = 0.0, num_classes: int | None = None, seed: int = 0,
                 device: str | torch.device | None = None, verbose: bool = True,
                 base_lrs: tuple[float, ...] = LR_GRID) -> ProbeResult:
    """Train BatchNorm1d(affine=False) + Linear on frozen features (N, F); report test top-1 in %.

    lr: the peak learning rate; None chooses it: each base lr in ``base_lrs`` (scaled by batch / 256,
    MAE's rule) trains a head on 90% of the training features, the best on the other 10% wins, and a
    final head is trained on all training features with it. Prints the arithmetic when verbose.
    """
    num_classes = _check(train_x, train_y, test_x, test_y, num_classes, "linear_probe")
    epochs, lr, batch_size, weight_decay, seed, base_lrs = _settings(epochs, lr, batch_size, weight_decay, seed,
                                                                     base_lrs)
    start_time = time.perf_counter()
    device = torch.device(device) if device is not None else torch.device("cpu")
    n, dim = train_x.shape
    batch_size = min(batch_size, n)
    steps_per_epoch = math.ceil(n / batch_size)
    x, y = train_x.float().to(device), train_y.to(device=device, dtype=torch.long)

    # 1. The head: parameter-free BatchNorm with the whole training set's statistics (computed once,
    #    then frozen), then a linear layer (MAE: trunc-normal std 0.01, zero bias).
    bn, z = _frozen_batchnorm(x)  # z: (N, F) standardised once; the linear layers train on these

    # 2. The learning rate: given, or the best of base_lrs on a held-out tenth of the training features.
    sweep = ()
    if lr is None:
        lr, sweep = _choose_lr(z, y, base_lrs, num_classes, epochs, batch_size, weight_decay, seed)
    lr = float(lr)
    total = epochs * steps_per_epoch
    if verbose:
        print(f"linear probe: {n} train / {len(test_x)} test features of dim {dim}, {num_classes} classes; "
              f"BatchNorm1d(affine=False, training-set statistics) + Linear({dim}, {num_classes})")
        if sweep:
            print("  base lr chosen on a held-out 10% of the training features: "
                  + ", ".join(f"{b:g} -> {a:.2f}%" for b, a in sweep))
        print(f"  SGD momentum 0.9, lr = {lr / batch_size * 256:.4g} (base) x {batch_size} (batch) / 256 = "
              f"{lr:.4g}, cosine to 0, wd {weight_decay}; {epochs} epochs x {steps_per_epoch} steps = {total}")

    # 3. The reported head: the chosen lr, all training features.
    weight, bias = _train_heads(z, y, [lr], num_classes, epochs, batch_size, weight_decay, seed)
    linear = nn.Linear(dim, num_classes).to(device)
    with torch.no_grad():
        linear.weight.copy_(weight[0].T)
        linear.bias.copy_(bias[0])
    head = nn.Sequential(bn, linear).eval()

    # 4. Top-1 accuracy of the whole head (BatchNorm + linear) on the raw test features.
    with torch.no_grad():
        train_acc = (linear(z).argmax(1) == y).float().mean().item() * 100
        test_pred = head(test_x.float().to(device)).argmax(1).cpu()
        test_acc = (test_pred == test_y.cpu()).float().mean().item() * 100
    seconds = time.perf_counter() - start_time
    if verbose:
        print(f"  -> test top-1 {test_acc:.2f}% (train {train_acc:.2f}%) in {seconds:.1f} s")
    return ProbeResult(test_acc, train_acc, epochs, lr, batch_size, seconds, total, n, len(test_x), sweep)


def _frozen_batchnorm(x: torch.Tensor) -> tuple[nn.BatchNorm1d, torch.Tensor]:
    """BatchNorm1d(affine=False) fixed to the statistics of all of x (N, F), in eval mode; and x through it."""
    bn = nn.BatchNorm1d(x.shape[1], affine=False, eps=1e-6).to(x.device)
    bn.running_mean.copy_(x.mean(0))
    bn.running_var.copy_(x.var(0, unbiased=False))
    bn.eval()
    with torch.no_grad():
        return bn, bn(x)  # (N, F)


def _choose_lr(z: torch.Tensor, y: torch.Tensor, base_lrs: tuple[float, ...], num_classes: int, epochs: int,
               batch_size: int, weight_decay: float, seed: int) -> tuple[float, tuple]:
    """The peak lr whose head does best on a held-out tenth of the standardised training features z (N, F).

    Returns (lr scaled by batch_size / 256, ((base lr, held-out top-1 %), ...)); the smallest lr wins ties."""
    n = len(z)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1)).to(z.device)
    n_val = max(1, int(n * VAL_FRACTION))
    val, fit = perm[:n_val], perm[n_val:]
    fit_bs = min(batch_size, len(fit))
    lrs = [b * fit_bs / 256 for b in base_lrs]
    weight, bias = _train_heads(z[fit], y[fit], lrs, num_classes, epochs, fit_bs, weight_decay, seed)
    with torch.no_grad():
        val_acc = ((torch.einsum("nf,kfc->knc", z[val], weight) + bias[:, None]).argmax(2)
                   == y[val]).float().mean(1) * 100  # (K,)
    sweep = tuple((float(b), round(float(a), 2)) for b, a in zip(base_lrs, val_acc))
    best = int(val_acc.argmax())  # the first (smallest) lr among ties
    return base_lrs[best] * batch_size / 256, sweep


def _train_heads(z: torch.Tensor, y: torch.Tensor, lrs: list[float], num_classes: int, epochs: int,
                 batch_size: int, weight_decay: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """K linear heads on standardised features z (N, F), one per peak lr, trained in one loop.

    Plain SGD with momentum 0.9 on the cross-entropy (torch.optim.SGD's update: buf = 0.9 buf + g,
    p -= lr buf), half-cycle cosine decay per step, no warmup, the same shuffles for every head.
    The gradient of a linear softmax classifier is short enough to write out, which makes a step about
    cheaper than autograd's on these tiny matrices (a test checks both give the same head):
        logits = z W + b,   dCE/dlogits = (softmax(logits) - onehot(y)) / B,
        dW = z^T dlogits (+ weight_decay W),   db = sum over the batch of dlogits.
    The K heads are the column blocks of one (F, K*C) matrix, so one matmul per step trains them all.
    Returns weights (K, F, C) and biases (K, C).
    """
    n, dim = z.shape
    k, c = len(lrs), num_classes
    generator = torch.Generator().manual_seed(seed)
    init = torch.empty(dim, c)
    nn.init.trunc_normal_(init, std=0.01, generator=generator)  # MAE's init, the same for every head
    weight = init.repeat(1, k).to(z.device)  # (F, K*C): head j owns columns j*C .. (j+1)*C - 1
    bias = torch.zeros(k * c, device=z.device)
    peak = torch.tensor(lrs, device=z.device, dtype=z.dtype).repeat_interleave(c)  # (K*C,) each head's lr
    buf_w, buf_b = torch.zeros_like(weight), torch.zeros_like(bias)  # momentum buffers
    steps_per_epoch = math.ceil(n / batch_size)
    total = epochs * steps_per_epoch
    # The ops are tiny ((256, F) x (F, K*C)), so on CPU the loop runs on one thread: with more, thread
    # hand-offs dominate, and on shared cores they made a step many times slower. Restored afterwards.
    threads = torch.get_num_threads()
    if z.device.type == "cpu":
        torch.set_num_threads(1)
    try:
        step = 0
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator).to(z.device)
            for i in range(steps_per_epoch):
                idx = order[i * batch_size:(i + 1) * batch_size]
                zb, yb, b = z[idx], y[idx], len(idx)  # (B, F), (B,)
                probs = torch.addmm(bias, zb, weight).view(b, k, c).softmax(-1)  # (B, K, C)
                probs[torch.arange(b, device=z.device), :, yb] -= 1.0  # softmax - onehot
                grad_logits = probs.view(b, k * c) / b  # (B, K*C): dCE/dlogits of the batch mean
                grad_w = zb.T @ grad_logits  # (F, K*C)
                if weight_decay:
                    grad_w.add_(weight, alpha=weight_decay)
                buf_w.mul_(0.9).add_(grad_w)
                buf_b.mul_(0.9).add_(grad_logits.sum(0))
                lr = peak * (0.5 * (1.0 + math.cos(math.pi * step / total)))  # (K*C,) cosine decay
                weight.sub_(buf_w * lr)
                bias.sub_(buf_b * lr)
                step += 1
    finally:
        torch.set_num_threads(threads)
    return weight.view(dim, k, c).permute(1, 0, 2).contiguous(), bias.view(k, c)


@torch.no_grad()
def knn_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
              k: int = KNN_K, *, temperature: float = KNN_TEMPERATURE, center: bool = True,
              chunk: int = 1024) -> float:
    """Weighted k-nearest-neighbour top-1 (%) under cosine similarity.

    Each test point takes its k most similar training points; neighbour j votes for its label with
    weight exp(cos_j / temperature). center: subtract the training mean before normalising (otherwise
    a shared offset, e.g. the constant background of Fashion-MNIST, dominates every cosine).
    """
    _check(train_x, train_y, test_x, test_y, None, "knn_probe")
    k, chunk = validate.integer("k", k, low=1, high=len(train_x)), validate.integer("chunk", chunk, low=1)
    temperature = validate.real("temperature", temperature, low=0.0, low_open=True)
    center = validate.boolean("center", center)
    train_x, test_x = train_x.float(), test_x.float()
    if center:
        mean = train_x.mean(0, keepdim=True)  # (1, F)
        train_x, test_x = train_x - mean, test_x - mean
    bank = F.normalize(train_x, dim=1)  # (N, F)
    train_y, test_y = train_y.to(bank.device).long(), test_y.to(bank.device).long()
    num_classes = int(max(train_y.max(), test_y.max())) + 1

    def predict(query: torch.Tensor) -> torch.Tensor:
        query = F.normalize(query, dim=1)  # (B, F)
        sims, nbrs = (query @ bank.T).topk(k, dim=1)  # (B, k) cosine similarities of the k nearest
        votes = torch.zeros(len(query), num_classes, device=bank.device)
        votes.scatter_add_(1, train_y[nbrs], (sims / temperature).exp())  # (B, classes)
        return votes.argmax(1)  # (B,)

    pred = batched(predict, test_x, chunk, device=bank.device)  # (N_test,)
    return 100.0 * (pred == test_y).sum().item() / len(test_x)


@dataclass(frozen=True)
class BaselineResult:
    """The raw-pixel reference row: linear probe and kNN on the pixels themselves."""

    dataset: str
    linear: ProbeResult
    knn: float
    n_train: int
    n_test: int
    seconds: float


def raw_pixel_baseline(dataset: str = "fashion-mnist", *, probe_train: int | None = None,
                       probe_test: int | None = None, epochs: int = EPOCHS, k: int = KNN_K, seed: int = 0,
                       verbose: bool = True) -> BaselineResult:
    """Linear probe and kNN on raw pixels of ``dataset`` (subsets of probe_train / probe_test, None = all)."""
    start = time.perf_counter()
    train, test = data_module.load(dataset, "train", verbose=verbose), data_module.load(dataset, "test",
                                                                                       verbose=verbose)
    itr = subset_indices(len(train), probe_train, seed)
    ite = subset_indices(len(test), probe_test, seed)
    train_x, test_x = raw_pixel_features(train.images[itr]), raw_pixel_features(test.images[ite])
    train_y, test_y = train.labels[itr], test.labels[ite]
    linear = linear_probe(train_x, train_y, test_x, test_y, epochs=epochs, seed=seed, verbose=verbose,
                          num_classes=len(train.classes))
    knn_start = time.perf_counter()
    knn = knn_probe(train_x, train_y, test_x, test_y, k=min(k, len(train_x)))
    seconds = time.perf_counter() - start
    if verbose:
        print(f"knn probe (k={k}, cosine, centred): {knn:.2f}% in {time.perf_counter() - knn_start:.1f} s; "
              f"raw-pixel baseline total {seconds:.1f} s")
    return BaselineResult(dataset, linear, knn, len(itr), len(ite), seconds)
