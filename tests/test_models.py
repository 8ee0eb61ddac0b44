"""DiT: adaLN-Zero identity at init, shapes, label dropout, fixed position embedding, argument checks."""

import math

import pytest
import torch

from ldae_lite.models import (
    DiT,
    DiTBlock,
    LabelEmbedder,
    LayerNormNoAffine,
    TimestepEmbedder,
    get_2d_sincos_pos_embed,
    modulate,
)

TINY = dict(in_dim=8, num_tokens=4, width=16, depth=2, heads=2)


def tiny(**overrides) -> DiT:
    torch.manual_seed(0)
    return DiT(**{**TINY, **overrides})


def randomize(model: DiT) -> DiT:
    """Break the zero-init so that t, y and every block actually change the output."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


def tokens(n=3, length=4, dim=8):
    return torch.randn(n, length, dim, generator=torch.Generator().manual_seed(2))


def test_modulate_is_per_sample_affine():
    x, shift, scale = torch.randn(2, 5, 3), torch.randn(2, 3), torch.randn(2, 3)
    out = modulate(x, shift, scale)
    assert torch.allclose(out[1, 4], x[1, 4] * (1 + scale[1]) + shift[1])
    assert torch.equal(modulate(x, shift.unsqueeze(1), scale.unsqueeze(1)), out)  # (N, 1, W) as DiTBlock passes


def test_modulate_under_autocast_matches_the_plain_formula():
    # float32 LayerNorm output, bf16 shift and scale (a bf16 Linear's output): casting them to float32
    # first gives x * (1 + scale) + shift exactly, with 1 + scale still formed in bf16
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 16, 32, generator=gen)
    shift = (0.1 * torch.randn(4, 32, generator=gen)).bfloat16()
    scale = (0.1 * torch.randn(4, 32, generator=gen)).bfloat16()
    plain = x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)
    out = modulate(x, shift, scale)
    assert out.dtype == torch.float32 and torch.equal(out, plain)


def test_layer_norm_no_affine_is_plain_layer_norm_bit_for_bit():
    torch.manual_seed(0)
    fast, plain = LayerNormNoAffine(24), torch.nn.LayerNorm(24, elementwise_affine=False, eps=1e-6)
    x = torch.randn(5, 7, 24, requires_grad=True)
    g = torch.randn(5, 7, 24)
    y_fast, y_plain = fast(x), plain(x)
    assert torch.equal(y_fast, y_plain)
    assert torch.equal(torch.autograd.grad(y_fast, x, g)[0], torch.autograd.grad(y_plain, x, g)[0])
    assert list(fast.parameters()) == [] and fast.state_dict() == {}  # the ones are not saved
    assert not any(k.endswith("ones") for k in DiTBlock(16, 2).state_dict())  # checkpoints load as before


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_every_block_is_identity_at_init(depth):
    model = tiny(depth=depth, encoder_depth=1)
    x, c = torch.randn(3, 4, 16), torch.randn(3, 16)
    for block in model.blocks:
        assert torch.equal(block(x, c), x)


def test_output_is_zero_at_init():
    model = tiny(num_classes=5)
    out = model(tokens(), torch.tensor([0.0, 10.0, 999.0]), torch.tensor([0, 4, 2]))
    assert out.shape == (3, 4, 8) and torch.count_nonzero(out) == 0


def test_shapes():
    model = tiny(out_dim=5, depth=4)
    x = tokens()
    assert model(x, torch.full((3,), 10.0)).shape == (3, 4, 5)
    assert model.features(x, 10.0).shape == (3, 16)
    assert model.encoder_depth == 2 and tiny(depth=5).encoder_depth == 2  # depth // 2
    assert tiny().out_dim == 8  # defaults to in_dim


def test_features_depth_override_and_embedding_only():
    model = randomize(tiny(depth=4))
    x = tokens()
    feats = [model.features(x, 10.0, depth=d) for d in range(5)]
    assert torch.allclose(feats[2], model.features(x, 10.0))  # default = encoder_depth = 2
    assert not torch.allclose(feats[1], feats[2])
    embedding = (model.x_embedder(x) + model.pos_embed).mean(1)
    assert torch.allclose(feats[0], embedding)
    with pytest.raises(ValueError, match="depth=5"):
        model.features(x, 10.0, depth=5)


def test_features_t_float_equals_tensor_and_t_matters():
    model = randomize(tiny())
    x = tokens()
    a = model.features(x, 10.0)
    assert torch.allclose(a, model.features(x, torch.full((3,), 10.0)))
    assert torch.allclose(a, model.features(x, torch.tensor(10.0)))
    assert not torch.allclose(a, model.features(x, 500.0))
    with pytest.raises(ValueError, match="t has shape"):
        model.features(x, torch.zeros(2))


def test_bad_input_shape_raises():
    with pytest.raises(ValueError, match=r"expected \(N, 4, 8\)"):
        tiny()(torch.zeros(2, 9, 8), 0.0)


def test_label_embedder_dropout_and_null():
    emb = LabelEmbedder(num_classes=3, hidden=4, dropout_prob=1.0)
    null = emb.embedding_table.weight[3]
    y = torch.tensor([0, 1, 2, 1])
    assert torch.equal(emb(y), null.expand(4, 4))  # training, p = 1: every label dropped
    emb.eval()
    assert torch.equal(emb(y), emb.embedding_table.weight[y])  # eval: labels kept
    assert torch.equal(emb(None, batch_size=2), null.expand(2, 4))  # y None -> null
    assert torch.equal(emb(torch.tensor([3])), null[None])  # null index passed explicitly
    half = LabelEmbedder(num_classes=3, hidden=4, dropout_prob=0.5)
    torch.manual_seed(0)
    out = half(torch.zeros(4000, dtype=torch.long))
    dropped = (out == half.embedding_table.weight[3]).all(1).float().mean().item()
    assert 0.45 < dropped < 0.55
    with pytest.raises(ValueError, match="dropout_prob=1.5"):
        LabelEmbedder(3, 4, 1.5)


def test_unconditional_model_rejects_labels_and_labels_matter():
    with pytest.raises(ValueError, match="num_classes=0"):
        tiny()(tokens(), 0.0, torch.zeros(3, dtype=torch.long))
    model = randomize(tiny(num_classes=3, class_dropout=0.0))
    x = tokens()
    assert not torch.allclose(model(x, 0.0, torch.tensor([0, 1, 2])), model(x, 0.0))


def test_pos_embed_is_fixed():
    model = tiny(width=32, num_tokens=16)
    assert model.pos_embed.shape == (1, 16, 32)
    assert not model.pos_embed.requires_grad
    assert all(p is not model.pos_embed for p in model.parameters())
    assert "pos_embed" not in model.state_dict()
    assert torch.equal(model.pos_embed[0], get_2d_sincos_pos_embed(32, 4))


def test_sincos_values():
    # dim 4: one frequency (w = 1); channels = [sin(col), cos(col), sin(row), cos(row)], row-major tokens
    emb = get_2d_sincos_pos_embed(4, 2)
    s, c = math.sin(1.0), math.cos(1.0)
    expected = torch.tensor([[0, 1, 0, 1], [s, c, 0, 1], [0, 1, s, c], [s, c, s, c]], dtype=torch.float32)
    assert torch.allclose(emb, expected)
    big = get_2d_sincos_pos_embed(64, 5)
    assert big.shape == (25, 64) and big.dtype == torch.float32 and big.abs().max() <= 1
    assert torch.allclose(big[:, :16].pow(2) + big[:, 16:32].pow(2), torch.ones(25, 16))
    with pytest.raises(ValueError, match="dim=6"):
        get_2d_sincos_pos_embed(6, 2)


def test_timestep_embedding_values():
    emb = TimestepEmbedder.timestep_embedding(torch.tensor([0.0, 1.0]), 8)  # freqs 1, 0.1, 0.01, 0.001
    assert torch.allclose(emb[0], torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0]))
    assert math.isclose(emb[1, 0].item(), math.cos(1.0), rel_tol=1e-6)
    assert math.isclose(emb[1, 5].item(), math.sin(0.1), rel_tol=1e-5)
    assert TimestepEmbedder.timestep_embedding(torch.zeros(3), 7).shape == (3, 7)
    assert TimestepEmbedder(16, mlp_hidden=4)(torch.zeros(3)).shape == (3, 16)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(width=18, heads=4), "width=18"),
        (dict(num_tokens=5), "num_tokens=5"),
        (dict(num_tokens=0), "num_tokens=0"),
        (dict(depth=0), "depth=0"),
        (dict(depth=2, encoder_depth=3), "encoder_depth=3"),
        (dict(encoder_depth=0), "encoder_depth=0"),
        (dict(width=6, heads=3), "width=6"),
        (dict(class_dropout=-0.1), "class_dropout=-0.1"),
        (dict(t_mlp_ratio=0), "t_mlp_ratio=0"),
    ],
)
def test_bad_constructor_args_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DiT(**{**TINY, **kwargs})


def test_training_steps_break_the_identity():
    # adaLN-Zero gradient order: step 1 moves only the zero-init output Linear (everything upstream sees
    # a zero weight); from step 2 on, gradients reach the gates and the blocks stop being identities.
    model = tiny(num_classes=3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x, target = tokens(), torch.randn(3, 4, 8)
    x_in, c = torch.randn(3, 4, 16), torch.randn(3, 16)
    for step in (1, 2):
        opt.zero_grad()
        loss = (model(x, torch.tensor([1.0, 50.0, 900.0]), torch.tensor([0, 1, 2])) - target).pow(2).mean()
        loss.backward()
        opt.step()
        gate_grads = [b.adaLN_modulation[-1].weight.grad.abs().sum().item() for b in model.blocks]
        identity = [torch.equal(b(x_in, c), x_in) for b in model.blocks]
        if step == 1:
            assert all(g == 0 for g in gate_grads) and all(identity)
            assert model.final_layer.linear.weight.abs().sum() > 0
    assert all(g > 0 for g in gate_grads) and not any(identity)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert torch.count_nonzero(model(x, 10.0)) > 0


def test_bf16_autocast_cpu():
    model = randomize(tiny())
    x = tokens()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, torch.full((3,), 10.0))
        feats = model.features(x, 10.0)
    ref = model(x, torch.full((3,), 10.0))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all() and feats.shape == (3, 16)
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max()


def test_num_params_and_flops():
    model = tiny()
    assert model.num_params() == sum(p.numel() for p in model.parameters())
    assert model.flops_per_image(training=True) == 3 * model.flops_per_image(training=False)
    big = DiT(in_dim=64, num_tokens=16, width=192, depth=6, heads=3)
    block_params = sum(p.numel() for p in big.blocks.parameters())
    assert big.t_embedder.mlp[0].out_features == 48  # t-MLP hidden = width / 4 (paper §4.1)
    # 6 * (weights applied to every token) * L dominates; per-image adaLN and attention add the rest
    assert 6 * 16 * (block_params - 6 * 6 * 192 * 193) < big.flops_per_image() < 6 * 16 * big.num_params()


def test_block_alone_runs_with_default_init():
    block = DiTBlock(16, 4, mlp_ratio=2.0)
    assert block(torch.randn(2, 3, 16), torch.randn(2, 16)).shape == (2, 3, 16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_forward_backward():
    model = randomize(tiny()).cuda()
    x = tokens().cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x, torch.full((3,), 10.0, device="cuda"))
    out.float().pow(2).mean().backward()
    assert torch.isfinite(out).all() and model.x_embedder.weight.grad is not None
