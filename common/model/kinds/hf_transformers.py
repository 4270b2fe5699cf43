"""Hugging Face transformers models from a ``save_pretrained`` folder (model + tokenizer).

``task`` picks what the model does with the bundle's single text column:

- ``text-classification``: ``label`` (string, ``id2label`` of the arg-max), ``score`` (float32,
  the softmax probability of that label), optional ``probabilities`` (``list<float32>``).
- ``feature-extraction``: ``embedding`` (``list<float32>``), the last hidden state pooled by
  ``[options] pooling``: ``mean`` over the real tokens (default) or ``cls`` (the first token).
- ``text-generation``: greedy decoding only. ``generated_text`` (string, only the new tokens,
  decoded without special tokens) and optional ``generated_tokens`` (int32: new tokens, the end
  token included). The rest comes from the folder's generation config; sampling or beam settings
  are refused.

Tokenizing is ``preprocess``, so on Ray with GPU replicas it runs in the CPU operator ahead of
them. A row's output does not depend on its batch: encoders get right padding with an attention
mask; decoders get left padding with an attention mask, from which ``generate`` derives each
row's position ids (its first real token at position 0) and stops each row at its own end token,
so every row's text is what ``model.generate`` gives for that row alone. Padding changes float
rounding (~1e-7 in float32), never a label or a token except at an exact tie; ``[options] dtype
= "float64"`` pushes that drift down to ~1e-15.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from common.errors import InputError
from common.model.handler import ModelHandler
from common.model.kinds._shared import bundle_error, import_library

#: the distributions whose versions can change this kind's results (a parity certificate records them)
LIBRARIES = ("transformers", "tokenizers", "torch")

CLASSIFY, EMBED, GENERATE = "text-classification", "feature-extraction", "text-generation"
TASKS = (CLASSIFY, EMBED, GENERATE)
# output name -> what its declared Arrow type must satisfy; the first of each task is required
_STRING, _FLOAT, _INT = pa.types.is_string, pa.types.is_floating, pa.types.is_integer


def _float_list(typ: pa.DataType) -> bool:
    return pa.types.is_list(typ) and pa.types.is_floating(typ.value_type)


OUTPUTS = {
    CLASSIFY: {
        "label": (_STRING, "string"),
        "score": (_FLOAT, "float32"),
        "probabilities": (_float_list, "list<float32>"),
    },
    EMBED: {"embedding": (_float_list, "list<float32>")},
    GENERATE: {"generated_text": (_STRING, "string"), "generated_tokens": (_INT, "int32")},
}
REQUIRED = {CLASSIFY: ("label", "score"), EMBED: ("embedding",), GENERATE: ("generated_text",)}
OPTIONS = {
    CLASSIFY: ("max_length", "dtype", "labels"),
    EMBED: ("max_length", "dtype", "pooling", "dimensions"),
    GENERATE: ("max_length", "dtype", "max_new_tokens"),
}
DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
POOLING = ("mean", "cls")
# Generation settings that are not greedy decoding (with their neutral value), and settings that
# read the padded prompt (a padded row would be penalised for its padding: batch-dependent).
_NOT_GREEDY = {
    "do_sample": False,
    "num_beams": 1,
    "num_beam_groups": 1,
    "penalty_alpha": None,
    "temperature": 1.0,
    "top_k": None,
    "top_p": 1.0,
    "typical_p": 1.0,
    "min_p": None,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
}
_READS_PADDING = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "encoder_repetition_penalty": 1.0}


class TransformersHandler(ModelHandler):
    """One handler for the three tasks; the task decides the model class, padding and outputs."""

    tasks = TASKS

    TOKENS = "__transformers_token_ids"

    # ----------------------------------------------------------------- checks on the driver
    def validate(self) -> None:
        super().validate()  # task
        self._check_spec()
        config = self.config
        if self.task == CLASSIFY:
            self._check_classifier(config)
        elif self.task == EMBED:
            self._check_embedding(config)
        else:
            self._check_generation(config)
        _ = self.tokenizer, self.max_length
        self._check_weights()

    @property
    def task(self) -> str:
        return self.bundle.task

    def _check_spec(self) -> None:
        bundle = self.bundle
        if len(bundle.features) != 1:
            raise bundle_error(
                bundle, "features", f"the transformers kind reads one text column, got {len(bundle.features)}"
            )
        if bundle.artifact is None or not bundle.artifact.is_dir():
            raise bundle_error(bundle, "artifact", "must be a save_pretrained folder (model and tokenizer)")
        allowed = OUTPUTS[self.task]
        for name, typ in bundle.outputs.items():
            if name not in allowed:
                raise bundle_error(
                    bundle, f"outputs.{name}", f"task {self.task} gives {', '.join(allowed)}; not {name}"
                )
            check, wanted = allowed[name]
            if not check(typ):
                raise bundle_error(
                    bundle, f"outputs.{name}", f"is {typ}; task {self.task} gives {wanted} there"
                )
        missing = [name for name in REQUIRED[self.task] if name not in bundle.outputs]
        if missing:
            raise bundle_error(bundle, "outputs", f"task {self.task} needs {', '.join(missing)}")
        unknown = sorted(set(bundle.options) - set(OPTIONS[self.task]))
        if unknown:
            raise bundle_error(
                bundle,
                f"options.{unknown[0]}",
                f"unknown for task {self.task}; valid: {', '.join(OPTIONS[self.task])}",
            )
        dtype = bundle.options.get("dtype", "float32")
        if dtype not in DTYPES:
            raise bundle_error(bundle, "options.dtype", f'"{dtype}" is not one of {", ".join(DTYPES)}')
        for name in ("max_length", "max_new_tokens", "dimensions"):
            value = bundle.options.get(name, 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bundle_error(bundle, f"options.{name}", f"must be a positive integer, got {value!r}")

    def _check_classifier(self, config) -> None:
        if not any(a.endswith("ForSequenceClassification") for a in config.architectures or []):
            raise self._wrong_architecture(config, "a ...ForSequenceClassification model")
        if config.problem_type not in (None, "single_label_classification") or config.num_labels < 2:
            raise bundle_error(
                self.bundle,
                "task",
                f"{CLASSIFY} takes a single-label classifier (softmax over 2+ classes); the model is "
                f"{config.problem_type or 'a regression'} with {config.num_labels} label(s)",
            )
        labels = self.labels
        wanted = self.bundle.options.get("labels")
        if wanted is not None and list(wanted) != labels:
            raise bundle_error(
                self.bundle,
                "options.labels",
                f"the model's {len(labels)} classes are {labels}, not {list(wanted)}",
            )

    def _check_embedding(self, config) -> None:
        pooling = self.bundle.options.get("pooling", "mean")
        if pooling not in POOLING:
            raise bundle_error(
                self.bundle, "options.pooling", f'"{pooling}" is not one of {", ".join(POOLING)}'
            )
        size = _hidden_size(config)
        wanted = self.bundle.options.get("dimensions")
        if wanted is not None and wanted != size:
            raise bundle_error(
                self.bundle,
                "options.dimensions",
                f"the model's embeddings have {size} dimensions, not {wanted}",
            )

    def _check_generation(self, config) -> None:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        causal = config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and any(
            a.endswith(("ForCausalLM", "LMHeadModel")) for a in config.architectures or []
        )
        if not causal:
            raise self._wrong_architecture(config, "a causal language model (...ForCausalLM)")
        generation = self.generation_config  # refuses sampling settings
        if self.max_new_tokens is None:
            raise bundle_error(
                self.bundle,
                "options.max_new_tokens",
                "is needed: the generation config does not set max_new_tokens",
            )
        positions = _max_positions(config)
        if positions is not None and self.max_length + self.max_new_tokens > positions:
            raise bundle_error(
                self.bundle,
                "options.max_length",
                f"{self.max_length} prompt tokens + max_new_tokens {self.max_new_tokens} exceed the model's "
                f"{positions} positions",
            )
        if generation.pad_token_id is None and not self.eos_ids:
            raise bundle_error(
                self.bundle, "artifact", "the model has neither a pad nor an end-of-sequence token"
            )

    def _wrong_architecture(self, config, wanted: str):
        return bundle_error(
            self.bundle,
            "task",
            f"{self.task} needs {wanted}; "
            f"the folder holds {', '.join(config.architectures or [config.model_type])}",
        )

    def _check_weights(self) -> None:
        """The weights file exists and its header is intact (cheap: the tensors are not read)."""
        folder = self.bundle.artifact
        files = sorted(folder.glob("*.safetensors"))
        if not files and not any(folder.glob("pytorch_model*.bin")):
            raise bundle_error(
                self.bundle, "artifact", f"{folder.name} has no model weights (model.safetensors)"
            )
        from safetensors import safe_open

        for file in files:
            try:
                with safe_open(str(file), framework="pt") as weights:
                    weights.keys()
            except Exception as exc:  # safetensors raises SafetensorError for a damaged header or size
                raise bundle_error(self.bundle, "artifact", f"cannot read {file.name}: {exc}") from None

    # ----------------------------------------------------------------- what the folder holds
    @functools.cached_property
    def config(self):
        import_library(self.bundle, "transformers", "transformers")
        from transformers import AutoConfig

        _quiet_transformers()
        try:
            return AutoConfig.from_pretrained(str(self.bundle.artifact), local_files_only=True)
        except Exception as exc:  # OSError for a missing config.json, ValueError for a bad one
            raise bundle_error(
                self.bundle, "artifact", f"cannot read the model config: {_first_line(exc)}"
            ) from None

    @functools.cached_property
    def tokenizer(self):
        """The folder's tokenizer, once per process (the CPU stage loads no model)."""
        import_library(self.bundle, "transformers", "transformers")
        from transformers import AutoTokenizer

        _quiet_transformers()
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # workers are forked; one thread per share
        try:
            return AutoTokenizer.from_pretrained(str(self.bundle.artifact), local_files_only=True)
        except Exception as exc:  # a missing or damaged tokenizer.json / tokenizer_config.json
            raise bundle_error(
                self.bundle, "artifact", f"cannot load the tokenizer: {_first_line(exc)}"
            ) from None

    @functools.cached_property
    def labels(self) -> list[str]:
        """Class names by index, from ``id2label`` (which must cover every class)."""
        config = self.config
        names = {int(k): str(v) for k, v in (config.id2label or {}).items()}
        if sorted(names) != list(range(config.num_labels)):
            raise bundle_error(
                self.bundle,
                "artifact",
                f"id2label names {len(names)} classes but the model has {config.num_labels}",
            )
        return [names[i] for i in range(config.num_labels)]

    @functools.cached_property
    def generation_config(self):
        """The folder's generation config, checked for greedy decoding, with our limits set."""
        from transformers import GenerationConfig

        try:
            generation = GenerationConfig.from_pretrained(str(self.bundle.artifact), local_files_only=True)
        except OSError:  # no generation_config.json: what the model config implies
            generation = GenerationConfig.from_model_config(self.config)
        for name, neutral in {**_NOT_GREEDY, **_READS_PADDING}.items():
            value = getattr(generation, name, None)
            if value not in (None, neutral):
                why = (
                    "only greedy decoding is supported"
                    if name in _NOT_GREEDY
                    else ("it reads the padded prompt, so a row's text would depend on its batch")
                )
                raise bundle_error(
                    self.bundle, "artifact", f"generation_config.json sets {name} = {value!r}; {why}"
                )
        return generation

    @functools.cached_property
    def max_new_tokens(self) -> int | None:
        return self.bundle.options.get("max_new_tokens", self.generation_config.max_new_tokens)

    @functools.cached_property
    def eos_ids(self) -> set[int]:
        eos = self.generation_config.eos_token_id
        return set() if eos is None else {eos} if isinstance(eos, int) else set(eos)

    @functools.cached_property
    def max_length(self) -> int:
        """Prompt tokens kept (the tokenizer truncates on its ``truncation_side``): the option, else
        what the model can take (minus ``max_new_tokens`` for generation)."""
        if "max_length" in self.bundle.options:
            return self.bundle.options["max_length"]
        limits = [
            n for n in (_max_positions(self.config), self.tokenizer.model_max_length) if n and n < 1_000_000
        ]
        if not limits:
            raise bundle_error(
                self.bundle, "options.max_length", "is needed: the model states no length limit"
            )
        room = min(limits) - ((self.max_new_tokens or 0) if self.task == GENERATE else 0)
        if room < 1:
            raise bundle_error(
                self.bundle,
                "options.max_new_tokens",
                f"{self.max_new_tokens} new tokens leave no room for a prompt "
                f"in the model's {min(limits)} positions",
            )
        return room

    # ----------------------------------------------------------------- the worker side
    def load_model(self) -> Any:
        import transformers

        self.validate()
        model_class = {
            CLASSIFY: transformers.AutoModelForSequenceClassification,
            EMBED: transformers.AutoModel,
            GENERATE: transformers.AutoModelForCausalLM,
        }[self.task]
        dtype = DTYPES[self.bundle.options.get("dtype", "float32")]
        try:
            model, info = model_class.from_pretrained(
                str(self.bundle.artifact), local_files_only=True, dtype=dtype, output_loading_info=True
            )
        except Exception as exc:  # damaged weights, or weights that do not fit the config
            raise bundle_error(
                self.bundle, "artifact", f"cannot load the model: {_first_line(exc)}"
            ) from None
        missing = sorted(info.get("missing_keys") or []) + sorted(info.get("mismatched_keys") or [])
        if missing:  # from_pretrained would fill them with random weights, silently
            raise bundle_error(
                self.bundle,
                "artifact",
                f"the weights do not cover the {type(model).__name__} that task {self.task} needs "
                f"(missing {', '.join(map(str, missing[:3]))}{' ...' if len(missing) > 3 else ''})",
            )
        return model.to(self.device).eval()

    def preprocess(self, batch):
        column = self.bundle.features[0]
        texts = batch.arrow(column)
        if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
            raise InputError(f'column "{column}" is {texts.type}; the transformers kind reads text')
        values = texts.to_pylist()
        present = [i for i, t in enumerate(values) if t is not None]
        encoded = (
            self.tokenizer(
                [values[i] for i in present],
                truncation=True,
                max_length=self.max_length,
                add_special_tokens=True,
            )["input_ids"]
            if present
            else []
        )
        ids: list[list[int] | None] = [None] * len(values)
        for i, row in zip(present, encoded, strict=True):
            if not row:  # nothing to continue from: generate would see only padding
                raise InputError(f'column "{column}": row {i} tokenizes to no tokens; it needs at least one')
            ids[i] = row
        return {self.TOKENS: pa.array(ids, pa.list_(pa.int32()))}

    def run_inference(self, batch, model):
        tokens = batch.arrow(self.TOKENS)
        valid = tokens.is_valid().to_numpy(zero_copy_only=False)
        results: dict[str, Any] = {}
        if valid.any():
            side = "left" if self.task == GENERATE else "right"
            ids, mask = self._padded(batch, tokens, side)
            if not valid.all():
                keep = torch.from_numpy(valid).to(ids.device)
                ids, mask = ids[keep], mask[keep]
            with torch.inference_mode():
                run = {CLASSIFY: self._classify, EMBED: self._embed, GENERATE: self._generate}[self.task]
                results = run(model, ids, mask)
        return {name: _with_nulls(results.get(name), valid, typ) for name, typ in self.bundle.outputs.items()}

    def _padded(self, batch, tokens: pa.Array, side: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids padded on ``side`` and their attention mask, built from the row lengths (a
        pad id may also be a real token, so the mask never comes from the ids)."""
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.generation_config.pad_token_id if self.task == GENERATE else 0
        if pad is None:
            pad = min(self.eos_ids)
        ids = batch.padded(self.TOKENS, side=side, pad=int(pad))
        lengths = pc.fill_null(pc.list_value_length(tokens), 0).to_numpy(zero_copy_only=False)
        lengths = torch.from_numpy(lengths.astype(np.int64)).to(ids.device)
        positions = torch.arange(ids.shape[1], device=ids.device)[None, :]
        if side == "right":
            mask = positions < lengths[:, None]
        else:
            mask = positions >= ids.shape[1] - lengths[:, None]
        return ids, mask.long()

    def _classify(self, model, ids, mask) -> dict[str, Any]:
        probabilities = model(input_ids=ids, attention_mask=mask).logits.double().softmax(dim=-1)
        score, best = probabilities.max(dim=-1)
        labels = self.labels
        return {
            "label": [labels[i] for i in best.tolist()],
            "score": score.float().cpu().numpy(),
            "probabilities": list(probabilities.float().cpu().numpy()),
        }

    def _embed(self, model, ids, mask) -> dict[str, Any]:
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state.double()
        if self.bundle.options.get("pooling", "mean") == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask[:, :, None].double()
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1)
        return {"embedding": list(pooled.float().cpu().numpy())}

    def _generate(self, model, ids, mask) -> dict[str, Any]:
        generation = self.generation_config
        pad = generation.pad_token_id if generation.pad_token_id is not None else min(self.eos_ids)
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            generation_config=generation,
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=pad,
        )
        texts, counts = [], []
        for row in out[:, ids.shape[1] :].tolist():
            count = next((i + 1 for i, token in enumerate(row) if token in self.eos_ids), len(row))
            texts.append(self.tokenizer.decode(row[:count], skip_special_tokens=True))
            counts.append(count)
        return {"generated_text": texts, "generated_tokens": np.array(counts, dtype=np.int32)}


def _with_nulls(values: Any, valid: np.ndarray, typ: pa.DataType) -> pa.Array:
    """One output column for the whole batch: the valid rows' values, null for null texts."""
    out: list[Any] = [None] * len(valid)
    if values is not None:
        for i, value in zip(np.flatnonzero(valid), values, strict=True):
            out[i] = (
                value.tolist()
                if isinstance(value, np.ndarray)
                else value.item()
                if hasattr(value, "item")
                else value
            )
    return pa.array(out, typ)


def _hidden_size(config) -> int:
    for name in ("hidden_size", "d_model", "n_embd", "dim"):
        if isinstance(getattr(config, name, None), int):
            return getattr(config, name)
    raise ValueError(f"cannot tell the hidden size of a {config.model_type} model")


def _max_positions(config) -> int | None:
    for name in ("max_position_embeddings", "n_positions", "max_seq_len"):
        if isinstance(getattr(config, name, None), int):
            return getattr(config, name)
    return None


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split("\n", 1)[0].split()) or type(exc).__name__


@functools.lru_cache(maxsize=1)
def _quiet_transformers() -> None:
    """No progress bars or advice on stderr in the workers; errors still raise."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
