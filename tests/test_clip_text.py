"""Our NNX CLIP text encoder vs transformers' CLIPTextModel (tiny random configs)."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from lavie_jax.convert import clip as convert_clip
from lavie_jax.convert import state
from lavie_jax.models import clip_text


def tiny_reference(hidden_act: str, eos_token_id: int):
    torch.manual_seed(0)
    config = transformers.CLIPTextConfig(
        vocab_size=1000,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act=hidden_act,
        eos_token_id=eos_token_id,
    )
    model = transformers.CLIPTextModel(config).eval()
    with torch.no_grad():  # perturb every parameter (LayerNorms start at identity)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return config, model


def ids_with_padding(eos: int):
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 900, size=(3, 77))
    for row, length in enumerate((5, 12, 77)):
        ids[row, length - 1 :] = eos  # EOS then padding with the same id, as SD's tokenizer does
    ids[:, 0] = 998  # a BOS-like id
    return ids


@pytest.mark.parametrize("hidden_act", ["quick_gelu", "gelu"])
@pytest.mark.parametrize("prefix", ["text_model.", ""])
def test_matches_transformers(hidden_act, prefix):
    hf_config, hf = tiny_reference(hidden_act, eos_token_id=999)
    sd = {k: v for k, v in hf.state_dict().items()}
    sd = {(prefix + k.removeprefix("text_model.")): v for k, v in sd.items()}
    ours = convert_clip.load_text_encoder_from_torch(
        sd, clip_text.CLIPTextConfig.from_hf_dict(hf_config.to_dict())
    )
    ids = ids_with_padding(999)
    with torch.no_grad():
        ref = hf(torch.from_numpy(ids), output_hidden_states=True)
    got = ours(jnp.asarray(ids, jnp.int32))
    assert np.abs(np.asarray(got) - ref.last_hidden_state.numpy()).max() <= 1e-4
    pooled = ours.pooled(jnp.asarray(ids), got)
    assert np.abs(np.asarray(pooled) - ref.pooler_output.numpy()).max() <= 1e-4
    # Penultimate layer (diffusers' clip_skip=1): hidden_states[-2] through the final LayerNorm.
    with torch.no_grad():
        penultimate = hf.final_layer_norm(ref.hidden_states[-2]).numpy()
    got_skip = ours(jnp.asarray(ids, jnp.int32), skip_last_layers=1)
    assert np.abs(np.asarray(got_skip) - penultimate).max() <= 1e-4


def test_legacy_eos_argmax_pooling():
    hf_config, hf = tiny_reference("quick_gelu", eos_token_id=2)
    ours = convert_clip.load_text_encoder_from_torch(
        hf.state_dict(), clip_text.CLIPTextConfig.from_hf_dict(hf_config.to_dict())
    )
    ids = ids_with_padding(999)  # the highest id marks the end, as in old configs
    with torch.no_grad():
        ref = hf(torch.from_numpy(ids)).pooler_output.numpy()
    got = ours.pooled(jnp.asarray(ids), ours(jnp.asarray(ids, jnp.int32)))
    assert np.abs(np.asarray(got) - ref).max() <= 1e-4


def test_converter_lists_bad_tensors():
    hf_config, hf = tiny_reference("quick_gelu", eos_token_id=999)
    config = clip_text.CLIPTextConfig.from_hf_dict(hf_config.to_dict())
    sd = dict(hf.state_dict())
    sd["encoder.layers.0.mlp.fc9.weight"] = sd.pop("encoder.layers.0.mlp.fc1.weight")
    sd["final_layer_norm.bias"] = torch.zeros(31)
    with pytest.raises(state.StateMismatchError) as err:
        convert_clip.load_text_encoder_from_torch(sd, config)
    message = str(err.value)
    assert "encoder.layers.0.mlp.fc1.kernel" in message  # missing
    assert "encoder.layers.0.mlp.fc9.kernel" in message  # unexpected
    assert "final_layer_norm.bias: got (31,), expected (32,)" in message


def test_bad_config_and_input():
    with pytest.raises(ValueError, match="hidden_act='relu'"):
        clip_text.CLIPTextConfig(hidden_act="relu")
    with pytest.raises(ValueError, match="unknown field"):
        clip_text.CLIPTextConfig.from_dict({"hidden_sise": 3})
    hf_config, hf = tiny_reference("gelu", eos_token_id=999)
    ours = convert_clip.load_text_encoder_from_torch(
        hf.state_dict(), clip_text.CLIPTextConfig.from_hf_dict(hf_config.to_dict())
    )
    with pytest.raises(ValueError, match=r"input_ids must be \(B, L\)"):
        ours(jnp.zeros((77,), jnp.int32))
