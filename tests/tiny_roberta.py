"""Tiny stand-ins for the authors' RoBERTa answer classifiers, built offline in a few seconds.

* :func:`build_tokenizer` trains a byte-level BPE (``tokenizers``) on the answers in ``tests/data``
  and saves it as a ``RobertaTokenizerFast`` folder with roberta-base's special tokens and ids
  (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, ``<mask>`` 4).
* :func:`build_classifier` writes ``epoch_10.pt`` + ``config.json``: the authors' module (``roberta``
  = ``RobertaModel`` with pooler, ``classifier`` = ``Linear(hidden, n)``, logits from the CLS vector)
  with a tiny :class:`RobertaConfig`. With ``texts``/``labels`` it is trained until it gives every
  text its label with probability >= ``margin``, so that tests know what it must output. The state
  dict also carries ``roberta.embeddings.position_ids``, as checkpoints of older transformers do.

    python tests/tiny_roberta.py /tmp/tinyclf   # writes tokenizer/, alignment/, perception/
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import RobertaConfig, RobertaModel

DATA = Path(__file__).resolve().parent / "data"
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
ALIGNMENT_NAMES = ("Safe", "Unsafe", "NA")
PERCEPTION_NAMES = ("A", "B", "C", "D", "N/A")
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 130, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
"""130 positions: texts are truncated at 128 tokens, so long answers exercise truncation."""


class RobertaClassifier(torch.nn.Module):
    """The authors' classifier module (CLS vector of the last hidden state -> one linear layer)."""

    def __init__(self, config: RobertaConfig, n_labels: int) -> None:
        super().__init__()
        self.roberta = RobertaModel(config)
        self.classifier = torch.nn.Linear(config.hidden_size, n_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.roberta(input_ids=input_ids, attention_mask=attention_mask)
        return self.classifier(out.last_hidden_state[:, 0])


def corpus() -> list[str]:
    """Every answer in tests/data (the tokenizer's training text)."""
    texts = []
    for f in sorted(DATA.rglob("*.jsonl")):
        texts += [json.loads(line)["answer"] for line in f.read_text().splitlines() if line.strip()]
    return texts


def build_tokenizer(folder: Path, vocab_size: int = 1000) -> Path:
    """A RoBERTa-style byte-level BPE tokenizer folder that ``AutoTokenizer.from_pretrained`` loads."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus(), vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS,
                            show_progress=False)
    with tempfile.TemporaryDirectory() as raw:
        vocab, merges = bpe.save_model(raw)
        tok = RobertaTokenizerFast(vocab=vocab, merges=merges)
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    tok.save_pretrained(str(folder))
    return folder


def tiny_config(vocab_size: int, **overrides: Any) -> RobertaConfig:
    return RobertaConfig(vocab_size=vocab_size, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1,
                         bos_token_id=0, eos_token_id=2, **{**TINY, **overrides})


def _batch(tokenizer: Any, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def train(model: RobertaClassifier, tokenizer: Any, texts: list[str], labels: list[int], margin: float = 0.9,
          max_steps: int = 600, lr: float = 3e-3) -> int:
    """Full-batch Adam until every text gets its label with probability >= ``margin``; returns the steps."""
    batch = _batch(tokenizer, texts, model.roberta.config.max_position_embeddings - 2)
    target = torch.tensor(labels)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(1, max_steps + 1):
        model.train()
        loss = torch.nn.functional.cross_entropy(model(**batch), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            model.eval()
            with torch.no_grad():
                p = model(**batch).softmax(-1).gather(1, target[:, None]).min().item()
            if p >= margin:
                return step
    raise RuntimeError(f"tiny classifier did not separate its {len(texts)} texts in {max_steps} steps")


def build_classifier(folder: Path, tokenizer_folder: Path, n_labels: int, texts: list[str] | None = None,
                     labels: list[int] | None = None, seed: int = 0, **config: Any) -> Path:
    """``epoch_10.pt`` + ``config.json`` in ``folder``; trained on ``texts``/``labels`` when given."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_folder))
    torch.manual_seed(seed)
    cfg = tiny_config(len(tokenizer), **config)
    model = RobertaClassifier(cfg, n_labels)
    if texts:
        train(model, tokenizer, texts, labels or [])
    folder.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    state["roberta.embeddings.position_ids"] = torch.arange(cfg.max_position_embeddings)[None]
    torch.save(state, folder / "epoch_10.pt")
    cfg.to_json_file(str(folder / "config.json"))
    return folder


def _pick(path: Path, per_label: int, key: str = "label") -> list[dict[str, Any]]:
    """The first ``per_label`` rows of each label, in file order, with distinct answers."""
    counts: dict[str, int] = {}
    seen: set[str] = set()
    out = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row["answer"] in seen or counts.get(row[key], 0) >= per_label:
            continue
        seen.add(row["answer"])
        counts[row[key]] = counts.get(row[key], 0) + 1
        out.append(row)
    return out


ALIGNMENT_INDEX = {"safe": 0, "unsafe": 1, "na": 2}
PERCEPTION_INDEX = {"A": 0, "B": 1, "C": 2, "D": 3, "na": 4}


def alignment_examples(per_label: int = 8) -> tuple[list[str], list[str]]:
    """Real answers from tests/data with their human labels (``safe``/``unsafe``/``na``)."""
    rows = _pick(DATA / "alignment_answers.jsonl", per_label)
    return [r["answer"] for r in rows], [r["label"] for r in rows]


def perception_examples(per_label: int = 5) -> tuple[list[str], list[str]]:
    """Real multiple-choice answers with their letters (``A``-``D``/``na``)."""
    rows = _pick(DATA / "perception_answers.jsonl", per_label)
    return [r["answer"] for r in rows], [r["label"] for r in rows]


def build_all(root: Path) -> dict[str, Path]:
    """A tokenizer and both trained classifiers under ``root``."""
    tok = build_tokenizer(root / "tokenizer")
    a_texts, a_labels = alignment_examples()
    p_texts, p_labels = perception_examples()
    return {
        "tokenizer": tok,
        "alignment": build_classifier(root / "alignment", tok, 3, a_texts, [ALIGNMENT_INDEX[x] for x in a_labels]),
        "perception": build_classifier(root / "perception", tok, 5, p_texts, [PERCEPTION_INDEX[x] for x in p_labels]),
    }


if __name__ == "__main__":
    paths = build_all(Path(sys.argv[1] if len(sys.argv) > 1 else "tiny_classifiers"))
    print(" ".join(f"{k}={v}" for k, v in paths.items()))
