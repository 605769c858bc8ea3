"""Every ``UNSAFECONCEPTS_*`` environment variable, read in one place.

lmms-eval gives tasks no way to pass options, so the benchmark's choices come from the environment.
``current()`` reads them all into one ``Settings`` (fresh on each call: tests and tools change the
environment); modules take values from it, never from ``os.environ``. Values are strings as given
(stripped); each module checks the values it owns and says what to set when one is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

PREFIX = "UNSAFECONCEPTS_"


def _var(name: str, help: str, default: str = "") -> str:
    return field(default=default, metadata={"env": PREFIX + name, "help": help})


@dataclass(frozen=True)
class Settings:
    """The benchmark's settings (field -> ``UNSAFECONCEPTS_<FIELD>``, upper case)."""

    data: str = _var("DATA", "a folder (metadata.jsonl + images) or a .parquet file; unset or 'hf': the gated hub "
                     "dataset yiting/UnsafeConcepts")
    revision: str = _var("REVISION", "dataset revision on the hub")
    safe_data: str = _var("SAFE_DATA", "safe control images (fine-tuning data and test): a folder (metadata.jsonl "
                          "with image_filename, concept + images) or a .parquet file (image, concept); unset or 'hf': "
                          "the hub dataset yiting/imagenet_1k_unique_class")
    smid_data: str = _var("SMID_DATA", "out-of-domain set of unsafeconcepts_smid: a folder (metadata.jsonl with "
                          "image_filename, label 0 safe / 1 unsafe + images) or a .parquet file (image, label); unset "
                          "or 'hf': the hub dataset yiting/SMID")
    nsfw_data: str = _var("NSFW_DATA", "out-of-domain set of unsafeconcepts_nsfw: a folder or .parquet file as for "
                          "SMID_DATA; unset or 'hf': the hub dataset yiting/NSFWDataset")
    perception_options: str = _var("PERCEPTION_OPTIONS", "the authors' perception_metadata.jsonl (exact options)")
    seed: str = _var("SEED", "seed of the option sampler, the bootstrap CIs and the diversity sample", "2024")
    scorer: str = _var("SCORER", "answer scorer: rule, classifier or judge", "rule")
    split: str = _var("SPLIT", "all, finetune_test or finetune_train (the authors' 80/20 split)", "all")
    context_questions: str = _var("CONTEXT_QUESTIONS", "the authors' generated_questions.json (path or URL); "
                                  "default: the one beside the data")
    classifier_alignment: str = _var("CLASSIFIER_ALIGNMENT", "alignment classifier: hub id or local path")
    classifier_perception: str = _var("CLASSIFIER_PERCEPTION", "perception classifier: hub id or local path")
    classifier_tokenizer: str = _var("CLASSIFIER_TOKENIZER", "tokenizer of the classifiers")
    classifier_revision: str = _var("CLASSIFIER_REVISION", "hub revision of the classifiers")
    classifier_device: str = _var("CLASSIFIER_DEVICE", "cpu, cuda, cuda:N or mps (default: cuda when present)")
    classifier_batch_size: str = _var("CLASSIFIER_BATCH_SIZE", "answers per classifier batch")
    judge_base_url: str = _var("JUDGE_BASE_URL", "OpenAI-compatible endpoint of the judge")
    judge_model: str = _var("JUDGE_MODEL", "judge model name")
    judge_api_key_env: str = _var("JUDGE_API_KEY_ENV", "name of the variable holding the judge's key",
                                  "OPENAI_API_KEY")
    judge_cache: str = _var("JUDGE_CACHE", "folder of the judge's answer cache (default ~/.cache/unsafeconcepts/judge)")
    judge_concurrency: str = _var("JUDGE_CONCURRENCY", "concurrent judge requests", "32")


def env_name(name: str) -> str:
    """The environment variable of settings field ``name`` (for messages)."""
    return PREFIX + name.upper()


def current(env: Mapping[str, str] | None = None) -> Settings:
    """The settings the environment holds now; unset or blank variables take the defaults."""
    env = os.environ if env is None else env
    values = {}
    for f in fields(Settings):
        raw = env.get(f.metadata["env"], "").strip()
        if raw:
            values[f.name] = raw
    return Settings(**values)


def documented() -> dict[str, str]:
    """``{variable: help}`` for every setting (the README table and ``--help`` texts come from it)."""
    return {f.metadata["env"]: f.metadata["help"] for f in fields(Settings)}
