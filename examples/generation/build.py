"""Builds the generation example: trains a tiny character LM on a generated language, writes prompts.

The language has three tasks the model must learn from examples alone, over 2 to 8 letters a-j:
``rev:abc=`` -> ``cba;`` (reverse), ``inc:abc=`` -> ``bcd;`` (shift each letter by one, ``j``
wraps to ``a``) and ``srt:cab=`` -> ``abc;`` (sort, the hardest: it needs counting). ``;`` ends
an answer. Held-out accuracy is the exact match of greedy answers to prompts unseen in training.
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
    copy_handler,
    prepare_dirs,
    seed_everything,
    training_threads,
    write_input,
)
from examples.generation.generation_handler import PAD_ID, CharTokenizer, TinyLM, generate

HERE = Path(__file__).resolve().parent
HANDLER = HERE / "generation_handler.py"
DEFAULT_SIZE = 2000
LETTERS = "abcdefghij"
TASKS = ("rev", "inc", "srt")
ALPHABET = LETTERS + "nrstv:=;"  # task names add n, r, s, t, v; the rest are separators
EOS = ";"
MIN_LEN, MAX_LEN = 2, 8
MAX_NEW_TOKENS = MAX_LEN + 2  # room for the end marker, and one more to show truncation is counted
MODEL = {"d_model": 64, "heads": 4, "layers": 2, "max_positions": 32}
TRAIN_STEPS = 600
TRAIN_BATCH = 128
HOLDOUT = 300


def answer(task: str, letters: str) -> str:
    """The language's ground truth: what the model must learn to generate (before the end marker)."""
    if task == "rev":
        return letters[::-1]
    if task == "srt":
        return "".join(sorted(letters))
    return "".join(LETTERS[(LETTERS.index(ch) + 1) % len(LETTERS)] for ch in letters)


def sample_prompts(rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
    """``count`` random (prompt, answer) pairs."""
    pairs = []
    for _ in range(count):
        task = TASKS[rng.integers(len(TASKS))]
        letters = "".join(rng.choice(list(LETTERS), size=rng.integers(MIN_LEN, MAX_LEN + 1)))
        pairs.append((f"{task}:{letters}=", answer(task, letters)))
    return pairs


def training_batch(rng: np.random.Generator, tokenizer: CharTokenizer, count: int, exclude: set[str]):
    """Right-padded prompt+answer sequences; the loss covers answer tokens (and the end marker) only."""
    pairs = [p for p in sample_prompts(rng, count * 2) if p[0] not in exclude][:count]
    seqs = [tokenizer.encode(prompt + ans + EOS) for prompt, ans in pairs]
    width = max(map(len, seqs))
    ids = np.full((count, width), PAD_ID, dtype=np.int64)
    targets = np.full((count, width), -100, dtype=np.int64)  # -100: ignored by cross_entropy
    for row, ((prompt, _), seq) in enumerate(zip(pairs, seqs, strict=True)):
        ids[row, : len(seq)] = seq
        targets[row, len(prompt) - 1 : len(seq) - 1] = seq[len(prompt) :]
    return torch.from_numpy(ids), torch.from_numpy(targets)


def train(rng: np.random.Generator, tokenizer: CharTokenizer, exclude: set[str]) -> TinyLM:
    model = TinyLM(tokenizer.vocab_size, **MODEL)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, total_steps=TRAIN_STEPS, pct_start=0.1
    )
    model.train()
    for _ in range(TRAIN_STEPS):
        ids, targets = training_batch(rng, tokenizer, TRAIN_BATCH, exclude)
        positions = torch.arange(ids.shape[1]).expand_as(ids)
        logits, _ = model(ids, positions, ids != PAD_ID)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


def evaluate(model: TinyLM, tokenizer: CharTokenizer, pairs: list[tuple[str, str]]) -> tuple[float, float]:
    """Exact-match accuracy of greedy answers, and the smallest top-1 minus top-2 logit gap over
    every greedy step taken: the rounding drift a batch shape may add must stay far below it."""
    prompts = [tokenizer.encode(p) for p, _ in pairs]
    texts, steps = generate(model, prompts, MAX_NEW_TOKENS, tokenizer.eos_id, "cpu")
    accuracy = float(np.mean([tokenizer.decode(t) == a for t, (_, a) in zip(texts, pairs, strict=True)]))
    # Teacher-forced replay of each row alone: the logits behind every token it generated.
    margins = []
    with torch.inference_mode():
        for prompt, text, count in zip(prompts, texts, steps, strict=True):
            seq = prompt + text + [tokenizer.eos_id] * (count - len(text))
            ids = torch.tensor([seq])
            logits, _ = model(ids, torch.arange(len(seq))[None], ids != PAD_ID)
            chosen = logits[
                0, len(prompt) - 1 : len(prompt) - 1 + count, 1:
            ]  # column 0 (padding) is never chosen
            top = chosen.topk(2, dim=-1).values
            margins.append(float((top[:, 0] - top[:, 1]).min()))
    return accuracy, min(margins)


def build(size: int | None = None, seed: int = 0, out_dir: Path | str = HERE) -> dict:
    """Trains the LM, writes ``model/`` (state dict + handler + bundle.toml) and ``data/input.parquet``.

    Args:
        size: prompts in the prediction input (default 2000); training does not depend on it.
        seed: seeds the data and the training.
        out_dir: where ``data/`` and ``model/`` go (the example folder by default).
    """
    size = DEFAULT_SIZE if size is None else size
    rng = seed_everything(seed)
    data_dir, model_dir = prepare_dirs(Path(out_dir))
    tokenizer = CharTokenizer(ALPHABET, EOS)
    holdout = sample_prompts(np.random.default_rng(seed + 1), HOLDOUT)
    with training_threads(), Stopwatch() as clock:
        model = train(rng, tokenizer, exclude={p for p, _ in holdout})
    accuracy, margin = evaluate(model.double(), tokenizer, holdout)  # as shipped: float64

    torch.save(model.float().state_dict(), model_dir / "model.pt")
    copy_handler(HANDLER, model_dir)
    write_toml(
        model_dir / "bundle.toml",
        {
            "name": "generation",
            "description": "tiny decoder-only character LM; greedy, batched generation with a key/value "
            "cache",
            "kind": "python",
            "entrypoint": "generation_handler:GenerationHandler",
            "artifact": "model.pt",
            "features": ["prompt"],
            "batch_size": 64,
            "device": "auto",
            "outputs": {"generated": "string", "num_tokens": "int64"},
            "options": {
                **MODEL,
                "alphabet": ALPHABET,
                "eos": EOS,
                "max_new_tokens": MAX_NEW_TOKENS,
                "dtype": "float64",
            },
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
        "min_argmax_margin": margin,
        "rows": size,
        "train_steps": TRAIN_STEPS,
    }


if __name__ == "__main__":
    build_cli(build, __doc__.splitlines()[0], HERE)
