"""Our NNX AutoencoderKL vs diffusers' AutoencoderKL (tiny random weights; SD and ×4-upscaler shapes)."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from lavie_jax.convert import state
from lavie_jax.convert import vae as convert_vae
from lavie_jax.models import vae

SD_LIKE = dict(
    block_out_channels=(16, 32, 32, 32), layers_per_block=2, norm_num_groups=8, scaling_factor=0.18215
)
X4_LIKE = dict(block_out_channels=(16, 32, 32), layers_per_block=2, norm_num_groups=8, scaling_factor=0.08333)


def reference(cfg):
    torch.manual_seed(0)
    n = len(cfg["block_out_channels"])
    model = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        **cfg,
    ).eval()
    with torch.no_grad():  # perturb every parameter so norms are not identities
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module", params=[SD_LIKE, X4_LIKE], ids=["sd", "x4"])
def pair(request):
    ref = reference(request.param)
    ours = convert_vae.load_vae_from_torch(
        ref.state_dict(), vae.VAEConfig.from_diffusers_dict(dict(ref.config))
    )
    return ref, ours


def to_torch(x):  # (N, H, W, C) → (N, C, H, W)
    return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))


def test_encode_matches_diffusers(pair):
    ref, ours = pair
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 24, 3)).astype(np.float32)
    with torch.no_grad():
        dist = ref.encode(to_torch(x)).latent_dist
    got = ours.encode(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(got.mean), dist.mean.numpy().transpose(0, 2, 3, 1), atol=1e-4)
    np.testing.assert_allclose(np.asarray(got.logvar), dist.logvar.numpy().transpose(0, 2, 3, 1), atol=1e-4)


def test_decode_matches_diffusers(pair):
    ref, ours = pair
    f = ours.config.downsample_factor
    z = np.random.default_rng(1).standard_normal((2, 32 // f, 24 // f, 4)).astype(np.float32)
    with torch.no_grad():
        want = ref.decode(to_torch(z)).sample.numpy().transpose(0, 2, 3, 1)
    assert np.abs(np.asarray(ours.decode(jnp.asarray(z))) - want).max() <= 1e-4


def test_old_attention_names_load_identically(pair):
    ref, ours = pair
    renamed = {}
    for k, v in ref.state_dict().items():
        for new, old in (
            (".to_q.", ".query."),
            (".to_k.", ".key."),
            (".to_v.", ".value."),
            (".to_out.0.", ".proj_attn."),
        ):
            k = k.replace(new, old)
        if ".query." in k or ".key." in k or ".value." in k or ".proj_attn." in k:
            v = v[..., None, None] if v.ndim == 2 else v  # some files store them as 1×1 convs
        renamed[k] = v
    old = convert_vae.load_vae_from_torch(renamed, ours.config)
    for name, value in state.flat_params(ours).items():
        np.testing.assert_array_equal(np.asarray(state.flat_params(old)[name]), np.asarray(value))


@pytest.mark.parametrize("frames,frame_batch", [(5, 2), (3, 8)])
def test_video_frame_batching_equals_per_frame(pair, frames, frame_batch):
    _, ours = pair
    f = ours.config.downsample_factor
    x = np.random.default_rng(2).uniform(-1, 1, (2, frames, 16, 16, 3)).astype(np.float32)
    post = ours.encode_video(jnp.asarray(x), frame_batch=frame_batch)
    single = ours.encode(jnp.asarray(x.reshape(-1, 16, 16, 3)))
    np.testing.assert_allclose(np.asarray(post.mean).reshape(-1, 16 // f, 16 // f, 4), single.mean, atol=1e-5)
    video = ours.decode_video(post.mean, frame_batch=frame_batch)
    assert video.shape == (2, frames, 16, 16, 3)
    np.testing.assert_allclose(np.asarray(video).reshape(-1, 16, 16, 3), ours.decode(single.mean), atol=1e-5)


def test_posterior_sampling(pair):
    import jax

    _, ours = pair
    post = ours.encode(jnp.zeros((1, 16, 16, 3)))
    s1, s2 = post.sample(jax.random.key(0)), post.sample(jax.random.key(1))
    assert s1.shape == post.mean.shape and not np.allclose(s1, s2)


def test_errors(pair):
    ref, ours = pair
    with pytest.raises(ValueError, match="multiples of"):
        ours.encode(jnp.zeros((1, 18, 16, 3)))
    with pytest.raises(ValueError, match="must be \\(N, H, W, 3\\)"):
        ours.encode(jnp.zeros((1, 16, 16)))
    sd = dict(ref.state_dict())
    sd["encoder.conv_in.weight"] = sd["encoder.conv_in.weight"][:, :2]
    sd["decoder.extra.weight"] = torch.zeros(1, 1, 1, 1)
    with pytest.raises(state.StateMismatchError, match="encoder.conv_in.kernel: got"):
        convert_vae.load_vae_from_torch(sd, ours.config)
    with pytest.raises(ValueError, match="act_fn='gelu'"):
        vae.VAEConfig.from_diffusers_dict({"act_fn": "gelu"})
