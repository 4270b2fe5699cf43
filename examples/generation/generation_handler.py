"""A tiny decoder-only character LM and its batched greedy generation (a ``python`` bundle handler).

This file is copied into the bundle folder, so it is all that is needed to load the model: the
architecture, the tokenizer and the decoding loop. ``build.py`` imports the same classes to train.

Batched generation must give every prompt the text it would get alone, because Spark and Ray cut
batches differently. So prompts are left-padded with an attention mask, each row has its own
position ids (its first real token is position 0), the key/value cache is per row, and the model
runs in float64 at inference (``options.dtype``) so that the rounding differences between batch
shapes (~1e-16) are far below any argmax margin (the smallest margin is measured at build time).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from common.errors import BundleError, InputError
from common.model import ModelHandler

PAD_ID = 0
Cache = list[tuple[torch.Tensor, torch.Tensor]]


class CharTokenizer:
    """One id per character of ``alphabet`` (ids from 1; 0 is padding); ``eos`` ends an answer."""

    def __init__(self, alphabet: str, eos: str):
        if len(set(alphabet)) != len(alphabet) or eos not in alphabet:
            raise ValueError("alphabet must hold distinct characters, the end marker among them")
        self.alphabet = alphabet
        self.ids = {ch: i + 1 for i, ch in enumerate(alphabet)}
        self.eos_id = self.ids[eos]

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet) + 1

    def encode(self, text: str) -> list[int]:
        unknown = sorted(set(text) - set(self.ids))
        if unknown:
            raise ValueError(
                f"prompt {text!r} has characters outside the model's alphabet: {''.join(unknown)!r}"
            )
        return [self.ids[ch] for ch in text]

    def decode(self, ids) -> str:
        return "".join(self.alphabet[i - 1] for i in ids if i != PAD_ID)


class Block(nn.Module):
    """Pre-norm transformer block with causal self-attention over an optional key/value cache."""

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x, bias, cache=None):
        n, t, d = x.shape
        q, k, v = (
            z.view(n, t, self.heads, d // self.heads).transpose(1, 2)
            for z in self.qkv(self.ln1(x)).split(d, dim=-1)
        )
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        weights = ((q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads) + bias).softmax(dim=-1)
        x = x + self.proj((weights @ v).transpose(1, 2).reshape(n, t, d))
        return x + self.mlp(self.ln2(x)), (k, v)


class TinyLM(nn.Module):
    """Token + learned position embeddings, ``layers`` blocks, a linear head over the vocabulary."""

    def __init__(self, vocab_size: int, d_model: int, heads: int, layers: int, max_positions: int):
        super().__init__()
        self.max_positions = max_positions
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(max_positions, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, ids, positions, key_mask, cache: Cache | None = None):
        """Logits for ``ids`` (n, t) and the updated cache.

        Args:
            ids: new token ids, (n, t).
            positions: each token's position in its own row, (n, t).
            key_mask: True for real tokens over all keys, cached ones first, (n, past + t).
            cache: per block (keys, values) of the ``past`` earlier tokens, or None.
        """
        t, total = ids.shape[1], key_mask.shape[1]
        x = self.tok_emb(ids) + self.pos_emb(positions)
        causal = torch.ones(t, total, dtype=torch.bool, device=ids.device).tril(diagonal=total - t)
        allowed = (causal[None] & key_mask[:, None, :])[:, None]  # (n, 1, t, total)
        # A finite minimum, not -inf: a padding query sees no key at all, and -inf would make its
        # softmax NaN, which then leaks into real rows through 0 * NaN in the next layer.
        bias = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device).masked_fill(
            ~allowed, torch.finfo(x.dtype).min
        )
        new_cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, bias, None if cache is None else cache[i])
            new_cache.append(kv)
        return self.head(self.ln_f(x)), new_cache


def generate(
    model: TinyLM, prompts: list[list[int]], max_new_tokens: int, eos_id: int, device
) -> tuple[list[list[int]], np.ndarray]:
    """``generate_padded`` on prompts given as id lists (left-padded here)."""
    if min(len(p) for p in prompts) == 0:  # it would see only padding, and so depend on the batch
        raise ValueError("an empty prompt: the model needs at least one character to continue")
    width = max(len(p) for p in prompts)
    padded = np.zeros((len(prompts), width), dtype=np.int64)
    for row, ids in enumerate(prompts):
        padded[row, width - len(ids) :] = ids
    return generate_padded(model, _to_device(torch.from_numpy(padded), device), max_new_tokens, eos_id)


@torch.inference_mode()
def generate_padded(
    model: TinyLM, ids: torch.Tensor, max_new_tokens: int, eos_id: int
) -> tuple[list[list[int]], np.ndarray]:
    """Greedy decoding of left-padded prompts (``ids``: (n, width), 0 = padding) with a key/value cache.

    Returns:
        Per prompt the generated ids before the end marker, and the number of decoding steps the
        row used (the end marker counts; a row that hits ``max_new_tokens`` used all of them).
    """
    n, width = ids.shape
    if width + max_new_tokens > model.max_positions:
        raise ValueError(
            f"a prompt of {width} tokens plus {max_new_tokens} new ones exceeds the model's "
            f"{model.max_positions} positions"
        )
    key_mask = ids != PAD_ID
    positions = (key_mask.long().cumsum(dim=1) - 1).clamp(min=0)
    logits, cache = model(ids, positions, key_mask)
    next_position = positions[:, -1:] + 1
    done = torch.zeros(n, dtype=torch.bool, device=ids.device)
    steps = torch.zeros(n, dtype=torch.long, device=ids.device)
    tokens = []
    for step in range(max_new_tokens):
        last = logits[:, -1]
        last[:, PAD_ID] = torch.finfo(last.dtype).min  # padding is never a prediction
        token = last.argmax(dim=-1).masked_fill(done, PAD_ID)
        tokens.append(token)
        steps += (~done).long()
        done |= token == eos_id
        if step == max_new_tokens - 1 or bool(done.all()):
            break
        key_mask = torch.cat([key_mask, torch.ones_like(done)[:, None]], dim=1)
        logits, cache = model(token[:, None], next_position, key_mask, cache)
        next_position = next_position + 1
    out = torch.stack(tokens, dim=1).cpu().numpy()
    steps = steps.cpu().numpy()
    texts = []
    for row, count in zip(out, steps, strict=True):
        used = row[:count]
        texts.append([int(i) for i in (used[:-1] if used[-1] == eos_id else used)])
    return texts, steps


def _to_device(tensor: torch.Tensor, device) -> torch.Tensor:
    """Host -> device; pinned memory makes the copy asynchronous on CUDA."""
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor


class GenerationHandler(ModelHandler):
    """Reads the ``prompt`` column, writes ``generated`` (string) and ``num_tokens`` (int64).

    Tokenizing is ``preprocess``: on Ray with GPU replicas it runs in a CPU operator ahead of
    them. A null prompt gives null outputs; an empty prompt, one with a character outside the
    alphabet or one too long for the model's positions fails the batch with an InputError.
    """

    TOKENS = "__prompt_token_ids"

    @functools.cached_property
    def tokenizer(self) -> CharTokenizer:
        return CharTokenizer(self.bundle.options["alphabet"], self.bundle.options["eos"])

    def load_model(self):
        opts = self.bundle.options
        model = TinyLM(
            self.tokenizer.vocab_size, opts["d_model"], opts["heads"], opts["layers"], opts["max_positions"]
        )
        try:
            state = torch.load(self.bundle.artifact, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as exc:  # a damaged file or a state dict that does not fit the options
            raise BundleError(
                f"bundle {self.bundle.path}: cannot load {self.bundle.artifact.name}: {exc}"
            ) from None
        return model.to(device=self.device, dtype=getattr(torch, opts.get("dtype", "float64"))).eval()

    def preprocess(self, batch):
        column = self.bundle.features[0]
        positions, new = int(self.bundle.options["max_positions"]), int(self.bundle.options["max_new_tokens"])
        encoded = []
        for prompt in batch.arrow(column).to_pylist():
            if prompt is None:
                encoded.append(None)
                continue
            try:
                if not prompt:  # it would see only padding, and so depend on the batch
                    raise ValueError("an empty prompt: the model needs at least one character to continue")
                ids = self.tokenizer.encode(prompt)
                if len(ids) + new > positions:
                    raise ValueError(
                        f"a prompt of {len(ids)} tokens plus {new} new ones exceeds the model's "
                        f"{positions} positions"
                    )
            except ValueError as exc:  # a prompt the model cannot read: bad input, named as such
                raise InputError(f'column "{column}": {exc}') from None
            encoded.append(ids)
        return {self.TOKENS: pa.array(encoded, pa.list_(pa.int32()))}

    def run_inference(self, batch, model):
        valid = batch.arrow(self.TOKENS).is_valid().to_numpy(zero_copy_only=False)
        generated: list[str | None] = [None] * batch.num_rows
        num_tokens = np.zeros(batch.num_rows, dtype=np.int64)
        if valid.any():
            # left-padded to the longest row (null rows are empty), on the model's device
            ids = batch.padded(self.TOKENS, side="left")
            if not valid.all():
                ids = ids[torch.from_numpy(valid).to(ids.device)]
            limit = int(self.bundle.options["max_new_tokens"])
            texts, steps = generate_padded(model, ids, limit, self.tokenizer.eos_id)
            for i, row, count in zip(np.flatnonzero(valid), texts, steps, strict=True):
                generated[i], num_tokens[i] = self.tokenizer.decode(row), count
        return {
            "generated": pa.array(generated, pa.string()),
            "num_tokens": pa.array(num_tokens, mask=~valid),
        }
