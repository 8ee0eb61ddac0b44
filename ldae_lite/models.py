"""The denoising network: a Diffusion Transformer (DiT) over a sequence of latent tokens.

arXiv 2401.14404 §4.1 uses DiT-L: a plain ViT whose blocks are conditioned on the noise level t (and,
in the first rows of Tab. 1, on the class label) through adaptive LayerNorm with zero-initialised gates
("adaLN-Zero"). The first half of the blocks is the encoder whose globally average pooled output is
probed; the second half is the decoder (the symmetric 12/12 split is the best in the paper's table).
The t-MLP hidden width is 1/4 of the model width, as in the paper ("at no accuracy cost").

Components carry DiT's names (modulate, TimestepEmbedder, LabelEmbedder, DiTBlock, FinalLayer) so this
file reads side by side with the DiT paper. Differences from DiT, all deliberate:
  - the input is already a token sequence (N, L, in_dim): tokenizers patchify, so the patch embedding
    is a Linear in_dim -> width (the same map as DiT's stride-p conv on pre-patchified input);
  - no learned variance: the head predicts only the mean (out_dim = in_dim by default). The paper moves
    to predicting clean data (eq. (3)) and then the original image (eq. (4)), where a learned
    variance plays no role;
  - attention uses torch's scaled_dot_product_attention (math backend on CPU, see Attention);
  - the MLP uses the exact (erf) GELU of ViT rather than DiT's tanh approximation: the two differ by
    less than 1e-3, and the tanh form is the slower one under bf16 autocast on CPU
    (benchmarks/results/kernels_cpu.md, "GELU").
Speed: the adaLN arithmetic (modulate, gates) is what ours runs on top of a plain ViT block; modulate
and the affine-free LayerNorm use the CPU's faster kernels (see each), and the whole model is timed
against timm's ViT in benchmarks/results/throughput_cpu.md.
Shapes: N batch, L tokens, W width, D token dimension.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from . import validate


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x (N, L, W) * (1 + scale) + shift, the same affine map for every token of a sample.

    shift and scale are (N, W), or already (N, 1, W) as DiTBlock passes them. Under bf16 autocast x is
    the float32 LayerNorm output while shift and scale come out of a bf16 Linear: they are cast to x's
    dtype first (small (N, W) tensors, exact casts; 1 + scale still formed in scale's own dtype), so the
    multiply and add over all tokens run as same-dtype kernels, faster on CPU than mixed-dtype ones and
    than one fused torch.addcmul (benchmarks/results/kernels_cpu.md, "adaLN modulate" rows). The values
    are those of the plain formula (tests/test_models.py).
    """
    if shift.ndim == 2:
        shift, scale = shift.unsqueeze(1), scale.unsqueeze(1)  # (N, 1, W): broadcast over the L tokens
    return x * (1 + scale).to(x.dtype) + shift.to(x.dtype)


class LayerNormNoAffine(nn.LayerNorm):
    """LayerNorm without learned parameters: adaLN's shift and scale take their place.

    Equal to nn.LayerNorm(width, elementwise_affine=False) bit for bit, but passes a constant weight of
    ones to F.layer_norm: torch's CPU kernel is faster with a weight than without one
    (benchmarks/results/kernels_cpu.md, "LayerNorm, no affine"), and multiplying by 1.0 is exact. The
    ones are a non-persistent buffer, so the state dict (and every saved checkpoint) is unchanged.
    """

    def __init__(self, width: int, eps: float = 1e-6):
        super().__init__(width, eps=eps, elementwise_affine=False)
        self.register_buffer("ones", torch.ones(width), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.normalized_shape, self.ones, None, self.eps)


class TimestepEmbedder(nn.Module):
    """t (N,) float in [0, 1000) -> (N, hidden): sinusoidal frequency embedding, then a 2-layer MLP."""

    def __init__(self, hidden: int, freq_dim: int = 256, mlp_hidden: int | None = None):
        super().__init__()
        self.freq_dim = freq_dim
        mlp_hidden = hidden if mlp_hidden is None else mlp_hidden  # the paper: hidden // 4
        self.mlp = nn.Sequential(nn.Linear(freq_dim, mlp_hidden), nn.SiLU(), nn.Linear(mlp_hidden, hidden))

    @staticmethod
    def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
        """Transformer-style features [cos(t w_k), sin(t w_k)], w_k = max_period^(-k / (dim/2))."""
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)  # (dim/2,)
        args = t.float()[:, None] * freqs[None]  # (N, dim/2)
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (N, 2 * (dim/2))
        return F.pad(emb, (0, dim % 2))  # (N, dim): one zero column when dim is odd

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.timestep_embedding(t, self.freq_dim))  # (N, hidden)


class LabelEmbedder(nn.Module):
    """y (N,) long -> (N, hidden). Row `num_classes` of the table is the null ("no label") embedding.

    y=None means unconditional: every sample gets the null row. During training each label is replaced
    by null with probability dropout_prob (classifier-free-guidance style). y may also hold the null
    index itself, which is how a sampler asks for the unconditional branch of selected samples.
    """

    def __init__(self, num_classes: int, hidden: int, dropout_prob: float):
        super().__init__()
        if not 0.0 <= dropout_prob <= 1.0:
            raise ValueError(f"dropout_prob={dropout_prob} must lie in [0, 1]")
        self.num_classes, self.dropout_prob = num_classes, dropout_prob
        self.embedding_table = nn.Embedding(num_classes + 1, hidden)  # + 1: the null row

    def forward(self, y: torch.Tensor | None, batch_size: int | None = None) -> torch.Tensor:
        device = self.embedding_table.weight.device
        if y is None:
            if batch_size is None:
                raise ValueError("LabelEmbedder needs batch_size when y is None")
            y = torch.full((batch_size,), self.num_classes, dtype=torch.long, device=device)
        elif self.num_classes == 0:
            raise ValueError("labels y were given to a model built with num_classes=0; pass y=None")
        elif self.training and self.dropout_prob > 0:
            drop = torch.rand(y.shape[0], device=y.device) < self.dropout_prob  # (N,) bool
            y = torch.where(drop, torch.full_like(y, self.num_classes), y)
        return self.embedding_table(y)  # (N, hidden)


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection and scaled_dot_product_attention.

    On CUDA, torch picks its fused (flash / memory-efficient) kernel. On CPU we pin the "math" backend:
    under bf16 autocast at 16 tokens torch's default CPU kernel is much slower, forward + backward
    (benchmarks/results/kernels_cpu.md, "attention"), and so is a whole training step
    (benchmarks/results/throughput_cpu.md: timm's ViT on the default backend against the math one).
    """

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.heads, width // self.heads)  # (N, L, 3, h, W/h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (N, h, L, W/h)
        cpu = x.device.type == "cpu"
        with sdpa_kernel(SDPBackend.MATH) if cpu else contextlib.nullcontext():
            out = F.scaled_dot_product_attention(q, k, v)  # (N, h, L, W/h)
        return self.proj(out.transpose(1, 2).reshape(n, length, width))  # (N, L, W)


class DiTBlock(nn.Module):
    """A transformer block whose LayerNorms are modulated by the conditioning c (adaLN-Zero).

    From c (N, W), SiLU + Linear regress six vectors: (shift, scale, gate) for attention and for the MLP.
        x <- x + gate_msa * Attn(modulate(LN(x), shift_msa, scale_msa))
        x <- x + gate_mlp * MLP(modulate(LN(x), shift_mlp, scale_mlp))
    The LayerNorms have no affine parameters of their own (shift and scale come from c). The modulation
    Linear is zero-initialised ("Zero"), so every gate starts at 0 and the block starts as the identity.
    """

    def __init__(self, hidden: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        mlp_hidden = int(hidden * mlp_ratio)
        self.norm1 = LayerNormNoAffine(hidden)
        self.attn = Attention(hidden, heads)
        self.norm2 = LayerNormNoAffine(hidden)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, mlp_hidden), nn.GELU(), nn.Linear(mlp_hidden, hidden)
        )  # exact GELU, as ViT; DiT's tanh approximation differs by < 1e-3 and is slower on CPU bf16
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # x: (N, L, W) tokens; c: (N, W) conditioning (t embedding + label embedding)
        modulation = self.adaLN_modulation(c).unsqueeze(1)  # (N, 1, 6W): one row per sample, for all tokens
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = modulation.chunk(6, dim=2)  # (N, 1, W)
        # gated residuals as written: a fused addcmul would mix float32 x with bf16 gate and branch output,
        # which is the slower kernel on CPU (benchmarks/results/kernels_cpu.md, "gated residual")
        x = x + gate_msa * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        x = x + gate_mlp * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x  # (N, L, W)


class FinalLayer(nn.Module):
    """adaLN-modulated LayerNorm, then a Linear W -> out_dim per token (zero-initialised)."""

    def __init__(self, hidden: int, out_dim: int):
        super().__init__()
        self.norm_final = LayerNormNoAffine(hidden)
        self.linear = nn.Linear(hidden, out_dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).unsqueeze(1).chunk(2, dim=2)  # each (N, 1, W)
        return self.linear(modulate(self.norm_final(x), shift, scale))  # (N, L, out_dim)


def get_1d_sincos_pos_embed(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """pos (M,) -> (M, dim): [sin(pos w_k), cos(pos w_k)], w_k = 10000^(-k / (dim/2)), k < dim/2."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))  # (dim/2,)
    out = pos.double()[:, None] * omega[None]  # (M, dim/2)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)  # (M, dim)


def get_2d_sincos_pos_embed(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding of a grid x grid token layout, float32 (grid * grid, dim).

    Tokens are in row-major order (token k sits at row k // grid, column k % grid, as patchify makes
    them). The first dim/2 channels encode the column, the last dim/2 the row.
    """
    if dim % 4 or dim < 4:
        raise ValueError(f"dim={dim} must be a positive multiple of 4 (sin and cos for rows and columns)")
    if grid < 1:
        raise ValueError(f"grid={grid} must be >= 1")
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")  # (grid, grid)
    emb_col = get_1d_sincos_pos_embed(dim // 2, cols.reshape(-1))  # (grid*grid, dim/2)
    emb_row = get_1d_sincos_pos_embed(dim // 2, rows.reshape(-1))  # (grid*grid, dim/2)
    return torch.cat([emb_col, emb_row], dim=1).float()  # (grid*grid, dim)


class DiT(nn.Module):
    """DiT over tokens: x (N, L, in_dim), t, y -> (N, L, out_dim); encoder = first encoder_depth blocks."""

    def __init__(self, in_dim: int, num_tokens: int, out_dim: int | None = None, width: int = 192,
                 depth: int = 6, heads: int = 3, mlp_ratio: float = 4.0, t_mlp_ratio: float = 0.25,
                 num_classes: int = 0, class_dropout: float = 0.1, encoder_depth: int | None = None):
        super().__init__()
        encoder_depth = depth // 2 if encoder_depth is None else encoder_depth  # the symmetric split
        grid = math.isqrt(num_tokens) if num_tokens >= 1 else 0
        checks = [
            (in_dim >= 1, f"in_dim={in_dim} must be >= 1"),
            (grid * grid == num_tokens and grid >= 1,
             f"num_tokens={num_tokens} must be a perfect square (1, 4, 9, 16, ...)"),
            (out_dim is None or out_dim >= 1, f"out_dim={out_dim} must be None or >= 1"),
            (heads >= 1 and width % heads == 0, f"width={width} must be divisible by heads={heads} >= 1"),
            (width >= 4 and width % 4 == 0, f"width={width} must be a positive multiple of 4 (sin-cos)"),
            (depth >= 1, f"depth={depth} must be >= 1"),
            (1 <= encoder_depth <= depth, f"encoder_depth={encoder_depth} must lie in [1, depth={depth}]"),
            (mlp_ratio > 0, f"mlp_ratio={mlp_ratio} must be > 0"),
            (t_mlp_ratio > 0, f"t_mlp_ratio={t_mlp_ratio} must be > 0 (the paper uses 0.25)"),
            (num_classes >= 0, f"num_classes={num_classes} must be >= 0 (0 = unconditional)"),
            (0.0 <= class_dropout <= 1.0, f"class_dropout={class_dropout} must lie in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.in_dim, self.num_tokens, self.out_dim = in_dim, num_tokens, out_dim or in_dim
        self.width, self.depth, self.heads, self.encoder_depth = width, depth, heads, encoder_depth
        self.mlp_ratio, self.num_classes = mlp_ratio, num_classes

        self.x_embedder = nn.Linear(in_dim, width)  # "patch embedding" of pre-patchified tokens
        self.t_embedder = TimestepEmbedder(width, mlp_hidden=max(1, round(width * t_mlp_ratio)))
        self.y_embedder = LabelEmbedder(num_classes, width, class_dropout)
        # Fixed, not learned; recomputed at construction, so it is kept out of the state dict.
        self.register_buffer("pos_embed", get_2d_sincos_pos_embed(width, grid)[None], persistent=False)
        self.blocks = nn.ModuleList(DiTBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.final_layer = FinalLayer(width, self.out_dim)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """DiT's initialisation; the zero-inits make the network start as "identity blocks, zero output"."""
        # 1. Every Linear: Xavier-uniform weights, zero bias (the ViT default).
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        # 2. Label table and the t-MLP: small normal weights, std 0.02.
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        # 3. adaLN-Zero: the Linear producing (shift, scale, gate) x 2 is zero, so at step 0 every gate
        #    is 0 and each DiTBlock returns its input unchanged (x + 0 * Attn(...) + 0 * MLP(...)).
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        # 4. Final layer: zero modulation and zero output Linear, so the model predicts exactly 0 at init.
        for linear in (self.final_layer.adaLN_modulation[-1], self.final_layer.linear):
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)

    def _embed(self, x: torch.Tensor, t: torch.Tensor | float, y: torch.Tensor | None):
        """Tokens (N, L, W) with position embedding, and conditioning c = emb(t) + emb(y), (N, W)."""
        if x.ndim != 3 or x.shape[1:] != (self.num_tokens, self.in_dim):
            raise ValueError(f"x has shape {tuple(x.shape)}; expected (N, {self.num_tokens}, {self.in_dim})")
        n = x.shape[0]
        t = torch.as_tensor(t, dtype=torch.float32, device=x.device)
        if t.ndim == 0:
            t = t.expand(n)  # one float t for the whole batch
        elif t.shape != (n,):
            raise ValueError(f"t has shape {tuple(t.shape)}; expected a float or shape ({n},)")
        if y is not None and self.num_classes:  # the null row is y=None's: label num_classes is refused here
            validate.labels(y, self.num_classes, f"DiT labels y (shape {tuple(y.shape)})")
        h = self.x_embedder(x) + self.pos_embed  # (N, L, W)
        c = self.t_embedder(t) + self.y_embedder(y, n)  # (N, W)
        return h, c

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, y: torch.Tensor | None = None):
        """x (N, L, in_dim), t (N,) float in [0, 1000) or one float, y (N,) long in [0, num_classes) or None
        (the null label for all) -> (N, L, out_dim).

        The output is the network's prediction only (noise, clean latent or image, per the objective);
        there is no learned-variance half as in DiT."""
        h, c = self._embed(x, t, y)  # (N, L, W), (N, W)
        for block in self.blocks:
            h = block(h, c)  # (N, L, W)
        return self.final_layer(h, c)  # (N, L, out_dim)

    def features(self, x: torch.Tensor, t: torch.Tensor | float, depth: int | None = None) -> torch.Tensor:
        """Probe features (N, W): global average pool of the encoder's output tokens (arXiv 2401.14404 §4).

        The encoder is the first `depth` blocks (default encoder_depth; 0 gives the patch embedding
        alone), conditioned on t and the null label. The paper probes at fixed t = 10 on clean input.
        """
        depth = self.encoder_depth if depth is None else depth
        if not 0 <= depth <= self.depth:
            raise ValueError(f"depth={depth} must lie in [0, {self.depth}]")
        h, c = self._embed(x, t, None)  # (N, L, W), (N, W)
        for block in self.blocks[:depth]:
            h = block(h, c)
        return h.mean(dim=1)  # (N, W)

    def num_params(self, trainable_only: bool = True) -> int:
        """Number of parameters (the fixed position embedding is a buffer and never counts)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def flops_per_image(self, training: bool = True) -> float:
        """Matmul FLOPs for one image: 2 per multiply-add forward, x3 with the backward pass (nanoGPT's
        6N rule). Per-token weights count L times, per-image ones (t-MLP, adaLN) once, plus attention's
        QK^T and AV: 2 * 2 * L^2 * W per block. Norms and elementwise ops are left out."""
        L, W = self.num_tokens, self.width
        mlp_hidden = int(W * self.mlp_ratio)
        t_hidden = self.t_embedder.mlp[0].out_features
        per_token = self.in_dim * W + self.depth * (4 * W * W + 2 * W * mlp_hidden) + W * self.out_dim
        per_image = self.t_embedder.freq_dim * t_hidden + t_hidden * W + self.depth * 6 * W * W + 2 * W * W
        forward = 2 * (per_token * L + per_image) + self.depth * 4 * L * L * W
        return float(3 * forward if training else forward)
