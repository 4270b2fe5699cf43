"""Builds the generation_transformers example: a small Llama trained on the generation example's language.

The language is ``examples.generation``'s (``rev:abc=`` -> ``cba``, ``inc:abc=`` -> ``bcd``,
``srt:cab=`` -> ``abc``; imported from there), so greedy answers can be checked exactly. Nothing
is downloaded: a byte-level BPE tokenizer is trained with ``tokenizers`` on the training texts (its
few merges learn the task names), a 2-layer Llama is built from a
``LlamaConfig`` and trained for a few seconds, and both are saved by ``save_pretrained``
(``model/hf``) with a greedy generation config, which is what ``kind = "transformers"`` reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from common.spec.toml import write_toml
from examples._torch_common import (
    Stopwatch,
    build_cli,
    prepare_dirs,
    seed_everything,
    training_threads,
    write_input,
)
from examples.generation.build import MAX_LEN
from examples.generation.build import sample_prompts as all_prompts

HERE = Path(__file__).resolve().parent
DEFAULT_SIZE = 2000
MERGES = 6  # BPE merges on top of the 256 bytes and the special tokens: the three task names
MODEL = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 32,
    # Llama's default 0.02 left this tiny model at chance after 500 steps; with 0.1 it learns the tasks.
    "initializer_range": 0.1,
}
MAX_NEW_TOKENS = MAX_LEN + 2  # an answer is at most MAX_LEN tokens, then the end token
TRAIN_STEPS, TRAIN_BATCH, HOLDOUT = 500, 64, 200
LEARNING_RATE = 3e-3
SPECIALS = ["<pad>", "<s>", "</s>"]
TASKS = ("rev:", "inc:")  # sorting needs counting: more training than a few seconds buys


def sample_prompts(rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
    """``count`` (prompt, answer) pairs of the generation example's reverse and shift tasks."""
    pairs: list[tuple[str, str]] = []
    while len(pairs) < count:
        pairs += [p for p in all_prompts(rng, count) if p[0].startswith(TASKS)]
    return pairs[:count]


def train_tokenizer(texts: list[str]):
    """A byte-level BPE tokenizer (GPT-2 style, ``<s>`` first) trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=len(alphabet) + len(SPECIALS) + MERGES, special_tokens=SPECIALS, initial_alphabet=alphabet
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        padding_side="left",
        model_max_length=MODEL["max_position_embeddings"],
    )


def training_batch(
    rng, tokenizer, count: int, exclude: set[str]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``<s> prompt answer </s>`` rows; the loss covers the answer and ``</s>`` only."""
    pairs = [p for p in sample_prompts(rng, count * 2) if p[0] not in exclude][:count]
    rows = []
    for prompt, answer in pairs:
        head = tokenizer(prompt)["input_ids"]
        tail = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append((head, tail))
    width = max(len(h) + len(t) for h, t in rows)
    ids = np.full((count, width), tokenizer.pad_token_id, dtype=np.int64)
    labels = np.full((count, width), -100, dtype=np.int64)
    mask = np.zeros((count, width), dtype=np.int64)
    for row, (head, tail) in enumerate(rows):
        seq = head + tail
        ids[row, : len(seq)], mask[row, : len(seq)] = seq, 1
        labels[row, len(head) : len(seq)] = tail
    return torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(labels)


def train(model, tokenizer, rng, exclude: set[str]):
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=LEARNING_RATE, total_steps=TRAIN_STEPS, pct_start=0.1
    )
    model.train()
    for _ in range(TRAIN_STEPS):
        ids, mask, labels = training_batch(rng, tokenizer, TRAIN_BATCH, exclude)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


def greedy_answers(model, tokenizer, prompts: list[str]) -> tuple[list[str], float]:
    """Greedy answers to ``prompts`` (one left-padded batch), and the smallest top-1 minus top-2
    logit gap over every step a row takes: how far its logits may move before a token changes."""
    encoded = tokenizer(prompts, padding=True, return_tensors="pt")
    width = encoded["input_ids"].shape[1]
    with torch.inference_mode():
        out = model.generate(
            **encoded,
            max_new_tokens=MAX_NEW_TOKENS,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
        )
    top = torch.stack(out.scores, dim=1).topk(2, dim=-1).values  # (rows, steps, 2)
    gaps = top[..., 0] - top[..., 1]
    answers, margins = [], []
    for row, new in enumerate(out.sequences[:, width:].tolist()):
        steps = next((i + 1 for i, t in enumerate(new) if t == tokenizer.eos_token_id), len(new))
        answers.append(tokenizer.decode(new[:steps], skip_special_tokens=True))
        margins.append(float(gaps[row, :steps].min()))
    return answers, min(margins)


def build(size: int | None = None, seed: int = 0, out_dir: Path | str = HERE) -> dict:
    """Trains tokenizer and model, writes ``model/`` (``hf/`` + bundle.toml) and ``data/input.parquet``.

    Args:
        size: prompts in the prediction input (default 2000); training does not depend on it.
        seed: seeds the data and the training.
        out_dir: where ``data/`` and ``model/`` go (the example folder by default).
    """
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    size = DEFAULT_SIZE if size is None else size
    rng = seed_everything(seed)
    data_dir, model_dir = prepare_dirs(Path(out_dir))
    holdout = sample_prompts(np.random.default_rng(seed + 1), HOLDOUT)
    tokenizer = train_tokenizer([p + a for p, a in sample_prompts(rng, 5000)])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
        **MODEL,
    )
    model = LlamaForCausalLM(config)
    with training_threads(), Stopwatch() as clock:
        train(model, tokenizer, rng, exclude={p for p, _ in holdout})
    model.generation_config = GenerationConfig(
        do_sample=False,
        max_new_tokens=MAX_NEW_TOKENS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    answers, margin = greedy_answers(model, tokenizer, [p for p, _ in holdout])
    accuracy = float(np.mean([got == want for got, (_, want) in zip(answers, holdout, strict=True)]))

    model.save_pretrained(model_dir / "hf")
    tokenizer.save_pretrained(model_dir / "hf")
    write_toml(
        model_dir / "bundle.toml",
        {
            "name": "generation_transformers",
            "description": "2-layer Llama with a byte-level BPE tokenizer; greedy batched generation",
            "kind": "transformers",
            "task": "text-generation",
            "artifact": "hf",
            "features": ["prompt"],
            "batch_size": 64,
            "device": "auto",
            "outputs": {"generated_text": "string", "generated_tokens": "int32"},
            "options": {"max_new_tokens": MAX_NEW_TOKENS},
        },
    )
    prompts = sample_prompts(np.random.default_rng(seed + 2), size)
    write_input(
        pa.table(
            {
                "id": pa.array(np.arange(size, dtype=np.int64)),
                "prompt": pa.array([p for p, _ in prompts], pa.string()),
                "expected": pa.array([a for _, a in prompts], pa.string()),
            }
        ),
        data_dir,
    )
    return {
        "train_seconds": clock.seconds,
        "holdout_exact_match": accuracy,
        "min_argmax_margin": round(margin, 4),
        "rows": size,
        "vocabulary": len(tokenizer),
        "train_steps": TRAIN_STEPS,
    }


if __name__ == "__main__":
    build_cli(build, __doc__.splitlines()[0], HERE)
