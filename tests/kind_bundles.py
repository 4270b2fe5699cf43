"""Small, real bundles of the library-backed kinds for tests, built in seconds from generated data.

XGBoost, LightGBM and ONNX models are trained or exported here; the transformers folders hold
tiny, randomly initialised models (what matters in tests is that the engines give what the
library gives for the same weights) with tokenizers trained by ``tokenizers`` on a few sentences.
Nothing is downloaded.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from common.spec.toml import write_toml

FEATURES = [f"f{i}" for i in range(5)]
WORDS = "the a phone laptop battery screen is was not very great bad awful fine i like hate this it".split()


def kinds_input(rows: int, seed: int = 0) -> pa.Table:
    """Numeric features with nulls and NaN, a text column and a prompt column (nulls, an empty
    string, a text longer than any model's max_length)."""
    rng = np.random.default_rng(seed)
    columns = {"id": pa.array(np.arange(rows, dtype=np.int64))}
    for i, name in enumerate(FEATURES):
        values = rng.normal(i, 1 + i, rows)
        values[rng.random(rows) < 0.05] = np.nan
        columns[name] = pa.array(values, mask=rng.random(rows) < 0.05)
    texts = [" ".join(rng.choice(WORDS, rng.integers(1, 12))) for _ in range(rows)]
    texts[1], texts[2], texts[3] = None, "", " ".join(WORDS * 6)
    prompts = [
        "rev:" + "".join(rng.choice(list("abcdefghij"), rng.integers(1, 7))) + "=" for _ in range(rows)
    ]
    prompts[4], prompts[5] = None, ""
    columns["text"] = pa.array(texts, pa.string())
    columns["prompt"] = pa.array(prompts, pa.string())
    return pa.table(columns)


def training_matrix(rows: int = 600, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """float64 features (NaN for missing) in ``FEATURES`` order and a 3-class label; the xgboost
    bundle's transform scales f0 with mean 0 and std 1, so these are its features too."""
    table = kinds_input(rows, seed)
    x = np.column_stack([table.column(n).to_numpy(zero_copy_only=False) for n in FEATURES]).astype(np.float64)
    y = np.digitize(np.nan_to_num(x[:, 0] + 0.5 * x[:, 1] - 0.2 * x[:, 3]), [0.0, 1.5])
    return x, y


def _bundle(folder: Path, spec: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_toml(folder / "bundle.toml", {"batch_size": 16, "device": "auto", **spec})
    return folder


def xgboost_bundle(folder: Path) -> Path:
    """multi:softprob over 3 classes, trained from a DataFrame (so saved with feature names)."""
    import pandas as pd
    import xgboost

    x, y = training_matrix()
    names = ["f0_z", *FEATURES[1:]]
    folder.mkdir(parents=True, exist_ok=True)
    booster = xgboost.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "nthread": 1, "seed": 0},
        xgboost.DMatrix(pd.DataFrame(x, columns=names), label=y),
        num_boost_round=15,
    )
    booster.save_model(str(folder / "model.json"))
    return _bundle(
        folder,
        {
            "kind": "xgboost",
            "artifact": "model.json",
            "method": "predict",
            "features": names,
            "outputs": {"p0": "float32", "p1": "float32", "p2": "float32"},
            "transforms": [
                {"op": "standard_scale", "column": "f0", "output": "f0_z", "mean": 0.0, "std": 1.0}
            ],
        },
    )


def lightgbm_bundle(folder: Path) -> Path:
    """A binary model saved as text, used with ``method = "raw"`` (raw scores)."""
    import lightgbm

    x, y = training_matrix()
    folder.mkdir(parents=True, exist_ok=True)
    params = {"objective": "binary", "num_leaves": 8, "num_threads": 1, "deterministic": True, "verbose": -1}
    model = lightgbm.train(params, lightgbm.Dataset(x, (y == 2).astype(int), feature_name=FEATURES), 20)
    model.save_model(str(folder / "model.txt"))
    return _bundle(
        folder,
        {
            "kind": "lightgbm",
            "artifact": "model.txt",
            "method": "raw",
            "features": FEATURES,
            "outputs": {"raw": "float64"},
        },
    )


def onnx_bundle(folder: Path) -> Path:
    """A small MLP with two outputs, exported by ``torch.onnx.export`` with a dynamic batch."""
    torch.manual_seed(0)

    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

        def forward(self, x):
            logits = self.body(torch.nan_to_num(x))
            return logits.softmax(dim=1), logits.argmax(dim=1)

    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TwoHeads().eval(),
            (torch.zeros(4, 5),),
            str(folder / "model.onnx"),
            input_names=["features"],
            output_names=["probabilities", "label"],
            dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
            verbose=False,
        )
    return _bundle(
        folder,
        {
            "kind": "onnx",
            "artifact": "model.onnx",
            "features": FEATURES,
            "outputs": {"probabilities": "list<float32>", "label": "int64"},
            "options": {"outputs": ["probabilities", "label"], "rows_per_run": 8},
        },
    )


def _wordpiece(max_length: int):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    tokenizer.train_from_iterator(
        [" ".join(WORDS)] * 20, trainers.WordPieceTrainer(vocab_size=80, special_tokens=specials)
    )
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=max_length,
    )


def bert_folder(folder: Path) -> Path:
    """A tiny random BERT classifier (3 labels) and its WordPiece tokenizer, by save_pretrained."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tokenizer = _wordpiece(max_length=24)
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=3,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
        pad_token_id=tokenizer.pad_token_id,
    )
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def classifier_bundle(folder: Path) -> Path:
    bert_folder(folder / "hf")
    return _bundle(
        folder,
        {
            "kind": "transformers",
            "task": "text-classification",
            "artifact": "hf",
            "features": ["text"],
            "outputs": {"label": "string", "score": "float32", "probabilities": "list<float32>"},
            "options": {"max_length": 24},
        },
    )


def embedding_bundle(folder: Path) -> Path:
    bert_folder(folder / "hf")
    return _bundle(
        folder,
        {
            "kind": "transformers",
            "task": "feature-extraction",
            "artifact": "hf",
            "features": ["text"],
            "outputs": {"embedding": "list<float32>"},
            "options": {"pooling": "mean", "dimensions": 32},
        },
    )


def generator_bundle(folder: Path) -> Path:
    """A tiny random Llama with a byte-level BPE tokenizer (``<s>`` first) and a greedy generation
    config; run in float64 so that rounding can never flip a token: a difference between batched
    and alone would be a padding, mask or position bug."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=len(alphabet) + 13, special_tokens=["<pad>", "<s>", "</s>"], initial_alphabet=alphabet
    )
    tokenizer.train_from_iterator(["rev:abc=cba", "inc:abc=bcd"] * 50, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.token_to_id("<s>"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=48,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    model = LlamaForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        max_new_tokens=6,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
    )
    model.save_pretrained(folder / "hf")
    fast.save_pretrained(folder / "hf")
    return _bundle(
        folder,
        {
            "kind": "transformers",
            "task": "text-generation",
            "artifact": "hf",
            "features": ["prompt"],
            "outputs": {"generated_text": "string", "generated_tokens": "int32"},
            "options": {"dtype": "float64", "max_length": 16},
        },
    )


BUILDERS = {
    "xgboost": xgboost_bundle,
    "lightgbm": lightgbm_bundle,
    "onnx": onnx_bundle,
    "classification": classifier_bundle,
    "embedding": embedding_bundle,
    "generation": generator_bundle,
}
