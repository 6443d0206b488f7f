"""Stand-ins for the worker classes the official evaluation scripts define for themselves.

    from locateanything_native.eval import GroundingEvalWorker      # inference_grounding_ddp.py
    worker = GroundingEvalWorker(model_path, device=f"cuda:{local_rank}", generation_mode="hybrid")
    text, question = worker.generate(image, ["person", "car"], max_new_tokens=4096)

Same constructor `(model_path, device="cuda", generation_mode="hybrid")`, methods, arguments, defaults and
return values as the scripts' `LocateAnythingWorker` classes; the scripts' sampling (temperature 0.7,
top-p 0.9, repetition penalty 1.1) and evaluation chat template. The model runs on the CPU: a CUDA device
is accepted with a warning (once per process). Extra keyword-only options: `quantization` ("int4" by
default; "none" reproduces the official float tokens), `threads`, `seed` (None: the engine's own
generator; an int: call n samples with a seed derived from (seed, n), reproducible per worker),
`temperature` / `top_p` / `repetition_penalty` overrides (`temperature=0`: greedy), and `engine` (share an
already loaded `Engine`). `last_result` holds the engine Result of the latest query (timings, scores).
"""
from __future__ import annotations

import threading
import warnings
from typing import Optional

from .. import _core
from ..engine import Engine
from ..images import to_array
from . import prompts

_device_warned = False
_device_lock = threading.Lock()


def resolve_device(device) -> str:
    """'cpu' for "cpu" and "cuda" / "cuda:N" (with a one-time warning); ValueError otherwise."""
    global _device_warned
    name = str(device).strip()
    kind = name.split(":", 1)[0].lower()
    if kind == "cpu":
        return "cpu"
    if kind == "cuda":
        with _device_lock:
            if not _device_warned:
                _device_warned = True
                warnings.warn(f"device={name!r}: locateanything_native runs on the CPU; the evaluation continues "
                              "there (this warning is shown once)", RuntimeWarning, stacklevel=3)
        return "cpu"
    raise ValueError(f"device={name!r}: pass 'cpu' or a CUDA device name ('cuda', 'cuda:0'; it runs on the CPU)")


class _EvalWorker:
    def __init__(self, model_path, device="cuda", generation_mode: str = "hybrid", *, quantization: str = "int4",
                 threads: int = 0, seed: Optional[int] = None, temperature: Optional[float] = None,
                 top_p: Optional[float] = None, repetition_penalty: Optional[float] = None,
                 engine: Optional[Engine] = None):
        if generation_mode not in prompts.GENERATION_MODES:
            raise ValueError(f"generation_mode must be one of {', '.join(prompts.GENERATION_MODES)}, "
                             f"got {generation_mode!r}")
        self.requested_device = device
        self.device = resolve_device(device)
        self.model_id = model_path
        self.generation_mode = generation_mode
        self.engine = engine if engine is not None else Engine(model_path, threads=threads, quantization=quantization)
        self.seed = None if seed is None else int(seed)
        self.temperature = temperature
        self.top_p = top_p
        self.repetition_penalty = repetition_penalty
        self.last_result: Optional[_core.Result] = None
        self._calls = 0
        self._lock = threading.Lock()

    def generate_kwargs(self, max_new_tokens: int = prompts.DEFAULT_MAX_NEW_TOKENS) -> dict:
        """The engine options of one query (the scripts' `build_generate_kwargs` plus this worker's overrides)."""
        return prompts.build_generate_kwargs(self.generation_mode, max_new_tokens, temperature=self.temperature,
                                             top_p=self.top_p, repetition_penalty=self.repetition_penalty)

    def _run(self, image, question: str, max_new_tokens: int) -> str:
        options = self.generate_kwargs(max_new_tokens)
        with self._lock:
            if self.seed is not None:
                options["seed"] = prompts.derive_seed(self.seed, self._calls)
            self._calls += 1
        result = self.engine.run(to_array(image), question, **options)
        self.last_result = result
        return result.answer

    @staticmethod
    def _messages(image, text: str) -> list:
        return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}]


class GroundingEvalWorker(_EvalWorker):
    """The worker of inference_grounding_ddp.py."""

    def build_messages(self, image, categories, question_override=None):
        """(messages, question): the question is `question_override + ", ".join(categories) + "."`, or the
        detection prompt with categories joined by "</c>"."""
        text = prompts.grounding_question(categories, question_override)
        return self._messages(image, text), text

    def generate(self, image, categories, max_new_tokens=4096, question_override=None):
        """(answer text, question)."""
        _, question = self.build_messages(image, categories, question_override=question_override)
        return self._run(image, question, max_new_tokens), question

    def generate_single_category_pointing(self, image, category: str, max_new_tokens=4096):
        """(answer text, "Point to: {category}.") for one category."""
        category = str(category)
        text, _ = self.generate(image, [category], max_new_tokens=max_new_tokens, question_override=prompts.POINT_TO)
        return text, prompts.pointing_question(category)


class DetectionEvalWorker(_EvalWorker):
    """The worker of inference_detection_ddp.py (COCO / LVIS)."""

    def build_messages(self, image, categories):
        return self._messages(image, prompts.detection_question(categories))

    def generate(self, image, categories, max_new_tokens=4096):
        """(answer text, question)."""
        question = prompts.detection_question(categories)
        return self._run(image, question, max_new_tokens), question


class SSProEvalWorker(_EvalWorker):
    """The worker of inference_sspro_ddp.py (ScreenSpot-Pro): the question is used as given."""

    def build_messages(self, image, question):
        return self._messages(image, question)

    def generate(self, image, question, max_new_tokens=4096):
        """The answer text."""
        return self._run(image, question, max_new_tokens)
