"""``tools/convert_sd.py upscaler``: a tiny random diffusers SD ×4 upscaler folder → a VSR-stage folder
whose inflated 3-D UNet equals the 2-D upscaler UNet at F = 1, whose ×4 VAE and OpenCLIP-style
text encoder equal PyTorch's, and whose tokenizer pads as the source does."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
import tiny_sd
import torch
import transformers
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    StableDiffusionUpscalePipeline,
    UNet2DConditionModel,
)
from test_convert_cli import convert_sd

from lavie_jax import models
from lavie_jax.convert import state
from lavie_jax.models import tokenizer
from lavie_jax.pipelines import model_folder

# The ×4 upscaler's UNet structure (4 levels, 2 layers, released VSR key names) at tiny width.
UPSCALER_STRUCTURE = dict(
    sample_size=8,
    in_channels=7,
    out_channels=4,
    block_out_channels=(32, 64, 64, 96),  # the released pattern (256, 512, 512, 1024)
    layers_per_block=2,
    down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * 3,
    up_block_types=("CrossAttnUpBlock2D",) * 3 + ("UpBlock2D",),
    only_cross_attention=(True, True, True, False),
    use_linear_projection=True,
    num_class_embeds=1000,
    cross_attention_dim=32,
    attention_head_dim=1,
    norm_num_groups=8,
)
VAE_X4 = dict(
    block_out_channels=(16, 32, 32),
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    latent_channels=4,
    layers_per_block=1,
    norm_num_groups=8,
)


@pytest.fixture(scope="module")
def upscaler_pipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("x4")
    vocab_dir = tiny_sd.write_vocab(root / "vocab")
    tok = transformers.CLIPTokenizer.from_pretrained(vocab_dir, model_max_length=77, pad_token="!")
    vocab_size = len(json.loads((vocab_dir / "vocab.json").read_text()))
    text_config = transformers.CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act="gelu",  # OpenCLIP-H's activation
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=0,
    )
    pipe = StableDiffusionUpscalePipeline(
        vae=tiny_sd.perturb(AutoencoderKL(**VAE_X4), seed=1),
        text_encoder=tiny_sd.perturb(transformers.CLIPTextModel(text_config), seed=2),
        tokenizer=tok,
        unet=tiny_sd.perturb(UNet2DConditionModel(**UPSCALER_STRUCTURE), seed=3),
        low_res_scheduler=DDPMScheduler(beta_schedule="scaled_linear"),
        scheduler=DDIMScheduler(beta_schedule="scaled_linear", prediction_type="v_prediction"),
        max_noise_level=350,
    )
    pipe.save_pretrained(root / "diffusers")
    return root / "diffusers", pipe


@pytest.fixture(scope="module")
def upscaler_folder(upscaler_pipe, tmp_path_factory):
    src, _ = upscaler_pipe
    out = tmp_path_factory.mktemp("conv") / "x4_vsr"
    assert convert_sd.main(["upscaler", str(src), "--out", str(out)]) == 0
    return out


def to_nhwc(x):
    return jnp.asarray(x.numpy().transpose(0, 2, 3, 1))


def test_inflated_unet_equals_the_2d_upscaler_at_one_frame(upscaler_pipe, upscaler_folder):
    _, pipe = upscaler_pipe
    assert model_folder.check_folder(upscaler_folder, stage="vsr")["stage"] == "vsr"
    unet = models.load_unet(upscaler_folder / "unet")
    assert (unet.config.temporal, unet.config.temporal_modules, unet.config.max_noise_level) == (
        "conv_rope_relpos",
        True,
        350,
    )
    flat = {k: np.asarray(v) for k, v in state.flat_params(unet).items()}
    zeroed = [k for k in flat if any(s in k for s in (".to_out.", "resblock_temporal.conv2.", "shift_conv."))]
    zeroed = [k for k in zeroed if "temporal" in k]
    assert zeroed and all(not flat[k].any() for k in zeroed)
    fresh = [k for k in flat if "temporal" in k and k not in zeroed and k.endswith("kernel")]
    assert fresh and all(flat[k].any() for k in fresh)  # the rest is freshly initialised, not zero

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((2, 4, 8, 8)).astype(np.float32))
    low = torch.from_numpy(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    ctx = torch.from_numpy(rng.standard_normal((2, 7, 32)).astype(np.float32))
    t, level = torch.tensor([400, 20]), torch.tensor([50, 350])
    with torch.no_grad():
        want = pipe.unet(torch.cat([x, low], 1), t, ctx, class_labels=level).sample
    got = unet(
        to_nhwc(x)[:, None],
        jnp.asarray(t.numpy()),
        jnp.asarray(ctx.numpy()),
        low_res=to_nhwc(low)[:, None],
        class_labels=jnp.asarray(level.numpy()),
    )[:, 0]
    assert np.abs(np.asarray(got) - want.numpy().transpose(0, 2, 3, 1)).max() <= 1e-4


def test_vae_text_encoder_and_tokenizer_match(upscaler_pipe, upscaler_folder):
    src, pipe = upscaler_pipe
    vae = models.load_vae(upscaler_folder / "vae")
    assert vae.config.scaling_factor == pytest.approx(0.08333)  # LaVie's ×4 VAE scale (spec §4.3)
    z = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 4, 4, 4)).astype(np.float32))
    with torch.no_grad():
        want_vae = pipe.vae.decode(z).sample.numpy().transpose(0, 2, 3, 1)
    assert np.abs(np.asarray(vae.decode(to_nhwc(z))) - want_vae).max() <= 1e-4

    ours = tokenizer.Tokenizer.from_folder(upscaler_folder / "tokenizer")
    reference = transformers.CLIPTokenizer.from_pretrained(src / "tokenizer")
    prompts = ["a red cat", "cat"]
    want_ids = np.asarray(reference(prompts, padding="max_length", max_length=77)["input_ids"])
    np.testing.assert_array_equal(ours(prompts), want_ids)
    assert (want_ids[:, -1] == 0).all()  # padded with "!" (id 0), as SD 2.x / the upscaler pad

    text = models.load_text_encoder(upscaler_folder / "text_encoder")
    with torch.no_grad():
        want_text = pipe.text_encoder(torch.from_numpy(want_ids)).last_hidden_state.numpy()
    assert np.abs(np.asarray(text(jnp.asarray(want_ids, jnp.int32))) - want_text).max() <= 1e-4


def test_not_an_upscaler_is_refused(tmp_path, capsys):
    tiny_sd.build(tmp_path).save_pretrained(tmp_path / "sd1")
    assert convert_sd.main(["upscaler", str(tmp_path / "sd1"), "--out", str(tmp_path / "o")]) == 2
    assert "expected the ×4 upscaler's 7 input channels" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
