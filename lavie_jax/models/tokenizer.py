"""The CLIP tokenizer: transformers' ``CLIPTokenizer`` over a local folder, padded to 77 ids.

SD pads every prompt to ``max_length`` with the pad token and truncates longer ones. Real SD
tokenizer folders (``vocab.json`` + ``merges.txt``) load with `Tokenizer.from_folder`;
`default_tokenizer` builds the same files from OpenAI's BPE vocabulary shipped in this package.
Note: transformers 5's ``CLIPTokenizer(vocab_file=..., merges_file=...)`` silently ignores both
files, so this wrapper always passes the contents (``vocab=``, ``merges=``).

The pad token is ``<|endoftext|>`` unless the folder names another: SD 2.x and the ×4 upscaler
(OpenCLIP-H) pad with ``!`` (id 0), set in ``special_tokens_map.json``, which transformers lets
override ``tokenizer_config.json``. A non-default pad token is saved in ``special_tokens_map.json``.
"""

from __future__ import annotations

import gzip
import json
import os
import pathlib

import numpy as np

ASSETS = pathlib.Path(__file__).resolve().parent.parent / "assets" / "clip_bpe"
BPE_GZ = ASSETS / "bpe_simple_vocab_16e6.txt.gz"
FILES = ("vocab.json", "merges.txt")
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
MAX_LENGTH = 77
NUM_MERGES = 49152 - 256 - 2  # CLIP's vocabulary: 2×256 byte symbols, the merges, 2 special tokens


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable-character table (BPE works on these characters)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table  # insertion order: printable bytes first, then the remapped ones (CLIP's id order)


def build_clip_vocab(gz_path: str | os.PathLike, out_dir: str | os.PathLike) -> pathlib.Path:
    """Derive ``vocab.json`` and ``merges.txt`` from CLIP's ``bpe_simple_vocab_16e6.txt.gz``."""
    lines = gzip.open(gz_path, "rt", encoding="utf-8").read().split("\n")
    merges = lines[1 : NUM_MERGES + 1]  # line 0 is a version header
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return out_dir


class Tokenizer:
    """Prompts → ``(B, 77)`` int32 ids: BOS, tokens, EOS, then padding (truncated to 77)."""

    def __init__(
        self,
        vocab: dict[str, int],
        merges: list[str],
        *,
        max_length: int = MAX_LENGTH,
        pad_token: str | None = None,
    ):
        from transformers import CLIPTokenizer

        if pad_token is not None and pad_token not in vocab:
            raise ValueError(f"Tokenizer: pad_token={pad_token!r} is not in the vocabulary")
        self.vocab, self.merges, self.max_length, self.pad_token = vocab, merges, max_length, pad_token
        pairs = [tuple(m.split()) for m in merges]  # the BPE backend wants (left, right) pairs
        extra = {} if pad_token is None else {"pad_token": pad_token}
        self._tok = CLIPTokenizer(vocab=vocab, merges=pairs, model_max_length=max_length, **extra)

    @staticmethod
    def _folder_pad_token(folder: pathlib.Path) -> str | None:
        """The pad token a tokenizer folder names: special_tokens_map.json, then tokenizer_config.json."""
        for name in (SPECIAL_TOKENS_MAP, "tokenizer_config.json"):
            path = folder / name
            if path.is_file():
                token = json.loads(path.read_text(encoding="utf-8")).get("pad_token")
                if isinstance(token, dict):  # serialised AddedToken
                    token = token.get("content")
                if token is not None:
                    return token
        return None

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, *, max_length: int = MAX_LENGTH) -> Tokenizer:
        """``vocab.json`` + ``merges.txt`` (SD's hub folders), or a ``tokenizer.json`` (what
        transformers 5's ``save_pretrained`` writes) holding the same BPE vocabulary and merges."""
        folder = pathlib.Path(folder)
        missing = [f for f in FILES if not (folder / f).is_file()]
        if missing and (folder / "tokenizer.json").is_file():
            model = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")).get("model", {})
            if model.get("type") != "BPE" or "vocab" not in model:
                raise ValueError(f"{folder}/tokenizer.json: expected a BPE model with a vocabulary")
            merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
            return cls(model["vocab"], merges, max_length=max_length, pad_token=cls._folder_pad_token(folder))
        if missing:
            raise ValueError(
                f"tokenizer folder {str(folder)!r} lacks {', '.join(missing)}; expected {FILES} "
                "or a tokenizer.json"
            )
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        merges = [
            line
            for line in (folder / "merges.txt").read_text(encoding="utf-8").split("\n")
            if line and not line.startswith("#version")
        ]
        return cls(vocab, merges, max_length=max_length, pad_token=cls._folder_pad_token(folder))

    def save(self, folder: str | os.PathLike) -> None:
        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")
        (folder / "merges.txt").write_text(
            "#version: 0.2\n" + "\n".join(self.merges) + "\n", encoding="utf-8"
        )
        if self.pad_token is not None:
            (folder / SPECIAL_TOKENS_MAP).write_text(
                json.dumps({"pad_token": self.pad_token}), encoding="utf-8"
            )

    def __call__(self, prompts: list[str] | str) -> np.ndarray:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise ValueError("Tokenizer: prompts is empty; expected at least one string")
        bad = [p for p in prompts if not isinstance(p, str)]
        if bad:
            raise ValueError(f"Tokenizer: prompts must be strings, got {bad[:3]!r}")
        ids = self._tok(prompts, padding="max_length", max_length=self.max_length, truncation=True)[
            "input_ids"
        ]
        return np.asarray(ids, np.int32)


def default_tokenizer(cache_dir: str | os.PathLike | None = None) -> Tokenizer:
    """OpenAI CLIP's tokenizer built from the vocabulary shipped in the package (built once, cached)."""
    from lavie_jax import compilation_cache

    folder = pathlib.Path(cache_dir or compilation_cache.default_dir().parent / "clip_tokenizer")
    if not all((folder / f).is_file() for f in FILES):
        build_clip_vocab(BPE_GZ, folder)
    return Tokenizer.from_folder(folder)
