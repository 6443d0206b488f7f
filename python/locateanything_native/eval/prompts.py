"""What the official evaluation scripts ask and how they sample (Embodied/evaluation in NVlabs/Eagle).

Prompts (the text after the image in the evaluation chat template, `chat_template="eval"`):

* inference_grounding_ddp.py, per row, first match wins:
  - `--eval_type point_eval` and dataset COCO / LVIS_fullval / VisDrone: one query per category,
    "Point to: {category}."; the record's question is the questions joined with " | " and its raw
    response the answers joined with newlines;
  - `--eval_type point_eval`: "Point to: " + ", ".join(categories) + ".";
  - HumanRef: "Locate all the instances that matches the following description: " + ", ".join(…) + ".";
  - RefCOCOg_val / RefCOCOg_test: "Locate a single instance that matches the following description: "
    + ", ".join(…) + ".";
  - TotalText / SROIE / IC15 / HierText: "Detect all the text in box format." + ", ".join(…) + "."
    (the script appends the categories to the full OCR sentence; reproduced literally);
  - otherwise: "Locate all the instances that matches the following description: " + "</c>".join(…) + ".".
* inference_detection_ddp.py (COCO / LVIS): always the last form, categories as given.
* inference_sspro_ddp.py (ScreenSpot-Pro): "Point to: {instruction}.".

Sampling (`inference_compat.build_generate_kwargs`): do_sample with temperature 0.7, top-p 0.9, repetition
penalty 1.1, no top-k; `n_future_tokens=6` in fast / hybrid mode (our engine's parallel-box window is the
checkpoint's `block_size`, which it requires to be 6); the grounding script also passes the tokenizer's
eos id, which the reference generate loop never reads (it stops on `<|im_end|>`, as our engine does).
"""
from __future__ import annotations

import hashlib
from typing import Optional, Sequence

OCR_DATASETS = frozenset({"TotalText", "SROIE", "IC15", "HierText"})
POINTING_PER_CATEGORY_DATASETS = frozenset({"COCO", "LVIS_fullval", "VisDrone"})
REFCOCOG_DATASETS = frozenset({"RefCOCOg_test", "RefCOCOg_val"})

LOCATE_ALL = "Locate all the instances that matches the following description: "
LOCATE_SINGLE = "Locate a single instance that matches the following description: "
POINT_TO = "Point to: "
DETECT_TEXT = "Detect all the text in box format."

EVAL_TYPES = ("box_eval", "point_eval")
GENERATION_MODES = ("fast", "slow", "hybrid")
DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.9
DEFAULT_REPETITION_PENALTY = 1.1
N_FUTURE_TOKENS = 6
DEFAULT_MAX_NEW_TOKENS = 4096


def grounding_question(categories: Sequence[str], question_override: Optional[str] = None) -> str:
    """The grounding worker's `build_messages` text."""
    if question_override is not None:
        return question_override + ", ".join(categories) + "."
    return LOCATE_ALL + "</c>".join(categories) + "."


def detection_question(categories: Sequence[str]) -> str:
    return LOCATE_ALL + "</c>".join(categories) + "."


def sspro_question(instruction) -> str:
    return f"{POINT_TO}{instruction}."


def pointing_question(category) -> str:
    return f"{POINT_TO}{category}."


def per_category_pointing(dataset_name, eval_type: str) -> bool:
    return eval_type == "point_eval" and dataset_name in POINTING_PER_CATEGORY_DATASETS


def grounding_override(dataset_name, eval_type: str) -> Optional[str]:
    """The prefix inference_grounding_ddp.py passes as `question_override` (None: the default prompt)."""
    if eval_type == "point_eval":
        return POINT_TO
    if dataset_name == "HumanRef":
        return LOCATE_ALL
    if dataset_name in REFCOCOG_DATASETS:
        return LOCATE_SINGLE
    if dataset_name in OCR_DATASETS:
        return DETECT_TEXT
    return None


def grounding_queries(categories: Sequence[str], dataset_name, eval_type: str) -> tuple[list[str], bool]:
    """(questions, per_category) for one row of the grounding script; categories already normalised."""
    if per_category_pointing(dataset_name, eval_type):
        return [pointing_question(str(c)) for c in categories], True
    return [grounding_question(categories, grounding_override(dataset_name, eval_type))], False


def build_generate_kwargs(generation_mode: str = "hybrid", max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                          include_eos_token: bool = False, *, temperature: Optional[float] = None,
                          top_p: Optional[float] = None, repetition_penalty: Optional[float] = None) -> dict:
    """The scripts' sampling as keyword options of `Engine.run` / `Engine.run_batch` (evaluation chat
    template). `include_eos_token` is accepted for parity and changes nothing (see the module docstring);
    `temperature=0` decodes greedily with the same top-p and repetition penalty."""
    if generation_mode not in GENERATION_MODES:
        raise ValueError(f"generation_mode must be one of {', '.join(GENERATION_MODES)}, got {generation_mode!r}")
    max_new_tokens = int(max_new_tokens)
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    return dict(
        generation_mode=generation_mode,
        max_new_tokens=max_new_tokens,
        temperature=float(DEFAULT_TEMPERATURE if temperature is None else temperature),
        top_p=float(DEFAULT_TOP_P if top_p is None else top_p),
        top_k=0,
        repetition_penalty=float(DEFAULT_REPETITION_PENALTY if repetition_penalty is None else repetition_penalty),
        chat_template="eval",
    )


def derive_seed(base: int, *parts: int) -> int:
    """A 63-bit seed from a base seed and indices (row, query): stable across processes and runs, so a
    row samples the same whether it runs alone, after a resume, or in another worker."""
    text = ":".join(str(int(p)) for p in (base, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") & ((1 << 63) - 1)
