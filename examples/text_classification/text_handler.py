"""A word tokenizer and a small transformer-encoder sentiment classifier (a ``python`` bundle handler).

This file is copied into the bundle folder with ``vocab.json`` and ``model.pt`` (a state dict), so
the bundle loads without the training code; ``build.py`` imports the same classes to train. The
tokenizer is the one the model was trained with: lower-case words and punctuation, looked up in
the training vocabulary, unknown words -> ``[UNK]``, a ``[CLS]`` token first, at most ``max_len``.
"""

from __future__ import annotations

import functools
import json
import re

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from common.errors import BundleError
from common.model import ModelHandler

PAD, UNK, CLS = "[PAD]", "[UNK]", "[CLS]"
SPECIALS = (PAD, UNK, CLS)  # ids 0, 1, 2
_WORD = re.compile(r"[a-z0-9']+|[^\sa-z0-9']")


class WordTokenizer:
    """Words -> ids with a fixed vocabulary; batches are right-padded to their longest row."""

    def __init__(self, vocabulary: list[str], max_len: int):
        if list(vocabulary[: len(SPECIALS)]) != list(SPECIALS):
            raise ValueError(f"the vocabulary must start with {SPECIALS}")
        self.vocabulary = list(vocabulary)
        self.ids = {word: i for i, word in enumerate(self.vocabulary)}
        self.max_len = max_len

    @classmethod
    def fit(cls, texts, max_len: int, min_count: int = 1) -> WordTokenizer:
        """Builds the vocabulary from training texts (sorted, so the same texts give the same ids)."""
        counts: dict[str, int] = {}
        for text in texts:
            for word in cls.split(text):
                counts[word] = counts.get(word, 0) + 1
        return cls([*SPECIALS, *sorted(w for w, c in counts.items() if c >= min_count)], max_len)

    @staticmethod
    def split(text: str) -> list[str]:
        return _WORD.findall(text.lower())

    def token_ids(self, text: str) -> list[int]:
        """``[CLS]`` + word ids, truncated to ``max_len``; unknown words -> ``[UNK]``."""
        unk = self.ids[UNK]
        return [self.ids[CLS], *(self.ids.get(w, unk) for w in self.split(text))][: self.max_len]

    def encode(self, texts: list[str]) -> np.ndarray:
        """int64 (rows, width): ``token_ids`` of each text, 0-padded on the right to the longest row."""
        rows = [self.token_ids(t) for t in texts]
        out = np.zeros((len(rows), max(map(len, rows))), dtype=np.int64)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out


class SentimentEncoder(nn.Module):
    """Embeddings + learned positions, a pre-norm ``nn.TransformerEncoder``, a head on ``[CLS]``."""

    def __init__(
        self, vocab_size: int, d_model: int, heads: int, layers: int, max_len: int, classes: int = 2
    ):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=2 * d_model, dropout=0.1, batch_first=True, norm_first=True
        )
        # No nested tensors: they would make padded and unpadded rows take different kernels.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, classes)

    def forward(self, ids):
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.encoder(self.tok_emb(ids) + self.pos_emb(positions), src_key_padding_mask=ids == 0)
        return self.head(self.norm(x[:, 0]))


class SentimentHandler(ModelHandler):
    """Reads a string column, writes ``label`` (1 = positive) and ``score`` (P(positive)).

    Tokenizing is ``preprocess``: on Ray with GPU replicas it runs in a CPU operator ahead of
    them. A null text gives a null label and score: there is nothing to classify.
    """

    TOKENS = "__text_token_ids"

    @functools.cached_property
    def tokenizer(self) -> WordTokenizer:
        opts = self.bundle.options
        try:
            vocabulary = json.loads((self.bundle.path / opts["vocabulary"]).read_text())
            return WordTokenizer(vocabulary, opts["max_len"])
        except Exception as exc:  # a missing or damaged vocabulary
            raise BundleError(f"bundle {self.bundle.path}: cannot load the vocabulary: {exc}") from None

    def load_model(self):
        opts = self.bundle.options
        vocabulary = self.tokenizer.vocabulary
        try:
            model = SentimentEncoder(
                len(vocabulary), opts["d_model"], opts["heads"], opts["layers"], opts["max_len"]
            )
            model.load_state_dict(torch.load(self.bundle.artifact, map_location="cpu", weights_only=True))
        except Exception as exc:  # a missing or damaged file, or weights that do not fit the options
            raise BundleError(f"bundle {self.bundle.path}: cannot load the model: {exc}") from None
        return model.to(self.device).eval()

    def preprocess(self, batch):
        texts = batch.arrow(self.bundle.features[0]).to_pylist()
        ids = [None if t is None else self.tokenizer.token_ids(t) for t in texts]
        return {self.TOKENS: pa.array(ids, pa.list_(pa.int32()))}

    def run_inference(self, batch, model):
        valid = batch.arrow(self.TOKENS).is_valid().to_numpy(zero_copy_only=False)
        score = np.zeros(batch.num_rows)
        if valid.any():
            # right-padded to the longest row (null rows are empty), on the model's device
            ids = batch.padded(self.TOKENS)
            if not valid.all():
                ids = ids[torch.from_numpy(valid).to(ids.device)]
            with torch.inference_mode():
                score[valid] = model(ids).softmax(dim=1)[:, 1].double().cpu().numpy()
        return {
            "label": pa.array((score > 0.5).astype(np.int64), mask=~valid),
            "score": pa.array(score, mask=~valid),
        }
