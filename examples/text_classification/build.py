"""Builds the text-classification example: a small transformer encoder trained on generated reviews.

Reviews are one or two clauses about a product. A clause's sentiment comes from its adjective or
verb and flips under negation ("is not great", "i do not recommend"); two clauses joined by "but"
disagree and the second one decides. So word counts alone are not enough: the model has to read
order and negation. 2% of training labels are flipped as noise. Held-out reviews and the
prediction input also name products never seen in training (they tokenize to ``[UNK]``).
"""

from __future__ import annotations

import json
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
from examples.text_classification.text_handler import SentimentEncoder, WordTokenizer

HERE = Path(__file__).resolve().parent
HANDLER = HERE / "text_handler.py"
DEFAULT_SIZE = 20_000
TRAIN_TEXTS, HOLDOUT_TEXTS = 8000, 1000
LABEL_NOISE = 0.02
MODEL = {"d_model": 64, "heads": 4, "layers": 2, "max_len": 32}
EPOCHS = 4

PRODUCTS = (
    "phone laptop blender jacket camera headset chair kettle lamp backpack speaker monitor keyboard tent"
).split()
UNSEEN_PRODUCTS = "drone scooter tripod router".split()  # only in held-out and prediction text
ASPECTS = "battery screen price delivery quality design sound fabric handle packaging service size".split()
GOOD = (
    "good great excellent amazing lovely solid reliable fantastic perfect superb comfortable sturdy".split()
)
BAD = (
    "bad terrible awful poor broken flimsy useless horrible disappointing faulty noisy uncomfortable".split()
)
INTENSIFIERS = ["", "", "very", "really", "quite", "extremely", "fairly", "truly"]
LIKE, DISLIKE = "love like recommend enjoy adore".split(), "hate dislike regret".split()
OPENERS = ["", "", "", "honestly,", "overall,", "to be honest,", "after two weeks,", "for the price,"]


def clause(rng: np.random.Generator, positive: bool, thing: str) -> str:
    """One clause whose sentiment is ``positive``, negated half of the time where the form allows."""
    negate = bool(rng.random() < 0.35)
    wanted = positive != negate  # the word's own polarity before the negation
    form = rng.integers(3)
    if form == 0:
        adj = rng.choice(GOOD if wanted else BAD)
        intensity = rng.choice(INTENSIFIERS)
        return " ".join(
            filter(None, [f"the {thing}", rng.choice(["is", "was"]), "not" if negate else "", intensity, adj])
        )
    if form == 1:
        verb = rng.choice(LIKE if wanted else DISLIKE)
        return f"i {'do not ' if negate else ''}{verb} this {thing}"
    adj = rng.choice(GOOD if positive else BAD)  # no negation in this form
    return " ".join(filter(None, [rng.choice(INTENSIFIERS), adj, thing]))


def review(rng: np.random.Generator, unseen: float) -> tuple[str, int]:
    """One review and its true label (1 = positive)."""
    products = UNSEEN_PRODUCTS if rng.random() < unseen else PRODUCTS
    product = str(rng.choice(products))
    positive = bool(rng.random() < 0.5)
    opener = str(rng.choice(OPENERS))
    if rng.random() < 0.5:
        body = clause(rng, positive, product)
    else:
        joiner = str(rng.choice(["and", "but"]))
        first_positive = positive if joiner == "and" else not positive
        second = clause(rng, positive, str(rng.choice(ASPECTS)))
        body = f"{clause(rng, first_positive, product)} {joiner} {second}"
    return " ".join(filter(None, [opener, body])) + str(rng.choice([".", "!", ""])), int(positive)


def reviews(rng: np.random.Generator, count: int, unseen: float = 0.0) -> tuple[list[str], np.ndarray]:
    pairs = [review(rng, unseen) for _ in range(count)]
    return [t for t, _ in pairs], np.array([y for _, y in pairs], dtype=np.int64)


def train(
    model: SentimentEncoder, ids: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> SentimentEncoder:
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    steps = EPOCHS * -(-len(ids) // 64)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    x, y = torch.from_numpy(ids), torch.from_numpy(labels)
    model.train()
    for _ in range(EPOCHS):
        order = torch.from_numpy(rng.permutation(len(x)))
        for start in range(0, len(x), 64):
            rows = order[start : start + 64]
            batch = x[rows]
            batch = batch[:, : int((batch != 0).sum(1).max())]  # drop all-padding columns
            loss = torch.nn.functional.cross_entropy(model(batch), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def build(size: int | None = None, seed: int = 0, out_dir: Path | str = HERE) -> dict:
    """Trains the classifier, writes ``model/`` (weights, vocabulary, handler, bundle.toml) and ``data/``.

    Args:
        size: reviews in the prediction input (default 20,000); training does not depend on it.
        seed: seeds the texts and the training.
        out_dir: where ``data/`` and ``model/`` go (the example folder by default).
    """
    size = DEFAULT_SIZE if size is None else size
    rng = seed_everything(seed)
    data_dir, model_dir = prepare_dirs(Path(out_dir))
    texts, labels = reviews(rng, TRAIN_TEXTS)
    noisy = np.where(rng.random(len(labels)) < LABEL_NOISE, 1 - labels, labels)
    tokenizer = WordTokenizer.fit(texts, MODEL["max_len"])
    model = SentimentEncoder(len(tokenizer.vocabulary), **MODEL)
    with training_threads(), Stopwatch() as clock:
        train(model, tokenizer.encode(texts), noisy, rng)
    holdout_texts, holdout_labels = reviews(rng, HOLDOUT_TEXTS, unseen=0.2)
    with torch.inference_mode():
        predicted = model(torch.from_numpy(tokenizer.encode(holdout_texts))).argmax(1).numpy()
    accuracy = float((predicted == holdout_labels).mean())

    torch.save(model.state_dict(), model_dir / "model.pt")
    (model_dir / "vocab.json").write_text(json.dumps(tokenizer.vocabulary) + "\n")
    copy_handler(HANDLER, model_dir)
    write_toml(
        model_dir / "bundle.toml",
        {
            "name": "text_classification",
            "description": "transformer-encoder sentiment classifier; word tokenizer with the training "
            "vocabulary",
            "kind": "python",
            "entrypoint": "text_handler:SentimentHandler",
            "artifact": "model.pt",
            "features": ["text"],
            "batch_size": 256,
            "device": "auto",
            "outputs": {"label": "int64", "score": "float64"},
            "options": {**MODEL, "vocabulary": "vocab.json"},
        },
    )

    input_texts, input_labels = reviews(np.random.default_rng(seed + 1), size, unseen=0.2)
    write_input(
        pa.table(
            {
                "id": pa.array(np.arange(size, dtype=np.int64)),
                "text": pa.array(input_texts, pa.string()),
                "sentiment": pa.array(input_labels),
            }
        ),
        data_dir,
    )
    return {
        "train_seconds": clock.seconds,
        "holdout_accuracy": accuracy,
        "rows": size,
        "vocabulary": len(tokenizer.vocabulary),
        "train_texts": TRAIN_TEXTS,
    }


if __name__ == "__main__":
    build_cli(build, __doc__.splitlines()[0], HERE)
