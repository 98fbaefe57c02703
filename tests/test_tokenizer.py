"""The CLIP tokenizer wrapper: real OpenAI CLIP ids from the shipped vocabulary, folders, errors."""

import numpy as np
import pytest

from lavie_jax.models import tokenizer

# Published OpenAI CLIP token ids (e.g. in the CLIP / transformers docs): BOS, a, photo, of, a, cat, EOS.
A_PHOTO_OF_A_CAT = [49406, 320, 1125, 539, 320, 2368, 49407]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tokenizer.default_tokenizer(tmp_path_factory.mktemp("clip"))


def test_real_clip_ids_and_padding(tok):
    ids = tok(["a photo of a cat"])
    assert ids.shape == (1, 77) and ids.dtype == np.int32
    assert ids[0, :7].tolist() == A_PHOTO_OF_A_CAT
    assert (ids[0, 7:] == 49407).all()  # SD 1.x pads with <|endoftext|>


def test_truncation_keeps_eos(tok):
    ids = tok(["cat " * 200])
    assert ids.shape == (1, 77) and ids[0, 0] == 49406 and ids[0, -1] == 49407
    assert (ids[0, 1:76] == 2368).all()


def test_folder_round_trip(tok, tmp_path):
    tok.save(tmp_path / "t")
    again = tokenizer.Tokenizer.from_folder(tmp_path / "t")
    prompts = ["a red circle moving left", "Two teddy bears, playing poker under water!"]
    np.testing.assert_array_equal(again(prompts), tok(prompts))


def test_bad_folder_and_prompts(tok, tmp_path):
    (tmp_path / "vocab.json").write_text("{}")
    with pytest.raises(ValueError, match="lacks merges.txt"):
        tokenizer.Tokenizer.from_folder(tmp_path)
    with pytest.raises(ValueError, match="prompts is empty"):
        tok([])
