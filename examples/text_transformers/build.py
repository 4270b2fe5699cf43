"""Builds the text_transformers example: a small BERT sentiment classifier in a save_pretrained folder.

The reviews are text_classification's (negation and contrast, so word counts are not enough;
imported from there). Everything is made here, nothing downloaded: a WordPiece tokenizer trained
with ``tokenizers`` on the training reviews, a 2-layer BERT built from a ``BertConfig``, trained
for a few seconds, and saved with its tokenizer by ``save_pretrained`` (``model/hf``), which is
what ``kind = "transformers"`` reads.
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
from examples.text_classification.build import reviews

HERE = Path(__file__).resolve().parent
DEFAULT_SIZE = 20_000
TRAIN_TEXTS, HOLDOUT_TEXTS = 4000, 500
LABELS = {0: "negative", 1: "positive"}
VOCAB_SIZE = 400
MAX_LENGTH = 48
MODEL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
EPOCHS, BATCH = 3, 32
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_tokenizer(texts: list[str]):
    """A BERT-style WordPiece tokenizer (lower-case, ``[CLS] text [SEP]``) trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(
        texts, trainers.WordPieceTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIALS)
    )
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=MAX_LENGTH,
    )


def train(model, tokenizer, texts: list[str], labels: np.ndarray, rng: np.random.Generator):
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    steps = EPOCHS * -(-len(texts) // BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    targets = torch.from_numpy(labels)
    model.train()
    for _ in range(EPOCHS):
        order = rng.permutation(len(texts))
        for start in range(0, len(texts), BATCH):
            rows = order[start : start + BATCH]
            encoded = tokenizer([texts[i] for i in rows], padding=True, truncation=True, return_tensors="pt")
            loss = model(**encoded, labels=targets[rows]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def build(size: int | None = None, seed: int = 0, out_dir: Path | str = HERE) -> dict:
    """Trains tokenizer and model, writes ``model/`` (``hf/`` + bundle.toml) and ``data/input.parquet``.

    Args:
        size: reviews in the prediction input (default 20,000); training does not depend on it.
        seed: seeds the texts and the training.
        out_dir: where ``data/`` and ``model/`` go (the example folder by default).
    """
    from transformers import BertConfig, BertForSequenceClassification
    from transformers.utils import logging

    logging.disable_progress_bar()
    size = DEFAULT_SIZE if size is None else size
    rng = seed_everything(seed)
    data_dir, model_dir = prepare_dirs(Path(out_dir))
    texts, labels = reviews(rng, TRAIN_TEXTS)
    tokenizer = train_tokenizer(texts)
    config = BertConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=MAX_LENGTH,
        num_labels=len(LABELS),
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
        pad_token_id=tokenizer.pad_token_id,
        **MODEL,
    )
    model = BertForSequenceClassification(config)
    with training_threads(), Stopwatch() as clock:
        train(model, tokenizer, texts, labels, rng)
    holdout_texts, holdout_labels = reviews(rng, HOLDOUT_TEXTS, unseen=0.2)
    with torch.inference_mode():
        logits = model(**tokenizer(holdout_texts, padding=True, truncation=True, return_tensors="pt")).logits
    accuracy = float((logits.argmax(1).numpy() == holdout_labels).mean())

    model.save_pretrained(model_dir / "hf")
    tokenizer.save_pretrained(model_dir / "hf")
    write_toml(
        model_dir / "bundle.toml",
        {
            "name": "text_transformers",
            "description": "2-layer BERT sentiment classifier and its WordPiece tokenizer (save_pretrained)",
            "kind": "transformers",
            "task": "text-classification",
            "artifact": "hf",
            "features": ["text"],
            "batch_size": 256,
            "device": "auto",
            "outputs": {"label": "string", "score": "float32", "probabilities": "list<float32>"},
            "options": {"labels": list(LABELS.values())},
        },
    )
    input_texts, input_labels = reviews(np.random.default_rng(seed + 1), size, unseen=0.2)
    write_input(
        pa.table(
            {
                "id": pa.array(np.arange(size, dtype=np.int64)),
                "text": pa.array(input_texts, pa.string()),
                "sentiment": pa.array([LABELS[int(y)] for y in input_labels], pa.string()),
            }
        ),
        data_dir,
    )
    return {
        "train_seconds": clock.seconds,
        "holdout_accuracy": accuracy,
        "rows": size,
        "vocabulary": len(tokenizer),
    }


if __name__ == "__main__":
    build_cli(build, __doc__.splitlines()[0], HERE)
