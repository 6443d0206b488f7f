"""Drop-in replacement for the official `LocateAnythingWorker` (same constructor, methods, arguments,
defaults and return dicts), running on the CPU engine."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from . import _core
from .engine import DEFAULTS, Engine
from .images import _is_pil, image_size, to_array
from .prompts import question

# The sampling the official worker and evaluation scripts use by default (their predict() signature and
# build_generate_kwargs); the engine's own defaults are greedy.
OFFICIAL_SAMPLING = {"temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.1}


class Stats(str):
    """The official statistics line (a str, so harnesses parsing `key=value;` pairs keep working), with
    this engine's per-stage timings as a dict in `.timings` (seconds: preprocess, vision, projector,
    prefill, decode, total; counts; tokens_per_second)."""

    timings: dict

    def __new__(cls, text: str, timings: dict):
        obj = super().__new__(cls, text)
        obj.timings = timings
        return obj

    def __reduce__(self):
        # pickle / copy.deepcopy (multiprocessing, joblib, Ray): rebuild from the text and the timings.
        return (Stats, (str(self), dict(self.timings)))


def _stats_line(result: _core.Result) -> str:
    t = result.timings
    # The reference times generate(), which includes the vision tower and the projector.
    generate_time = t["vision"] + t["projector"] + t["prefill"] + t["decode"]
    prefill_time = t["vision"] + t["projector"] + t["prefill"]
    n = len(result.generated_ids)
    boxes = result.answer.count("<box>")
    denom = generate_time if generate_time > 0 else 1e-9
    return (
        f"\nStatistic Info, num_tokens={n}; "
        f"generate_time(s)={generate_time:.4f}; "
        f"tps={(n / denom):.4f}; "
        f"forward_step={result.forward_calls}; "
        f"num_boxes={boxes}; "
        f"bps={(boxes / denom):.4f}; "
        f"prefill_time={prefill_time:.4f}; "
        f"switch_to_ar={result.switch_to_ar}"
        + ("; loop_guard=stopped" if result.loop_guard_fired else "")
        + "\n"
    )


class LocateAnythingWorker:
    """Stateful worker that loads the model once and serves perception queries (CPU engine).

    Accepts PIL images, numpy H×W×C uint8 arrays and image paths. Extra keyword-only options:
    `threads` (0 = all cores), `quantization` ("int4" by default; "none" = float32 compute from the
    checkpoint's weights, the path that reproduces the official float32 outputs token for token),
    `chat_template` ("worker" as the official worker, or "eval" as the evaluation scripts), `seed` (seeds
    the worker's sampling generator once; every call advances it, so repeated calls on the same input
    draw different answers, as the official worker's torch generator does, while a new worker with the
    same seed repeats the same sequence; `seed=` on a call fixes that call alone, and the rows of one
    batch draw from independent streams), `print_stats` (the reference prints the statistics line when
    verbose), `loop_guard` (off by default, so outputs stay identical to the reference: when on, a run
    of identical repeated boxes ends generation and the statistics line says `loop_guard=stopped`),
    `return_scores` (off by default, so the return dicts are the official ones: when on, each dict also
    holds "scores": {"boxes": [...], "points": [...]}, a confidence in (0, 1] per item of
    `parse_boxes(answer)` / `parse_points(answer)` in the same order — the geometric mean of the
    probabilities of its coordinate tokens — or None where unknown), `revision` (the Hugging Face
    revision when `model_path` is a repo id) and `progress` (a callback for the load, see `Engine`).
    """

    def __init__(
        self,
        model_path: str,
        device: str = "cpu",
        dtype=None,
        use_batch_runtime: bool = False,
        attn: str = "la_flash",
        vision_attn: str = "auto",
        scheduler: str = "pipeline",
        group_size: int = 0,
        strict_attn: bool = False,
        *,
        threads: int = 0,
        quantization: str = "int4",
        chat_template: str = "worker",
        seed: Optional[int] = 0,
        print_stats: bool = True,
        loop_guard: bool = False,
        vision_cache_mb: float = 0,
        return_scores: bool = False,
        revision: Optional[str] = None,
        progress=None,
    ):
        if str(device).split(":")[0].lower() != "cpu":
            raise ValueError(
                f"device={device!r}: locateanything_native runs on the CPU only; pass device='cpu' "
                "(or use the official PyTorch worker for GPUs)"
            )
        if chat_template not in ("worker", "eval"):
            raise ValueError(f"chat_template must be 'worker' or 'eval', got {chat_template!r}")
        self.device = "cpu"
        self.dtype = dtype
        self.use_batch_runtime = use_batch_runtime
        self.scheduler = scheduler
        self.group_size = group_size
        self.chat_template = chat_template
        self.seed = seed
        self.print_stats = print_stats
        self.loop_guard = loop_guard
        self.return_scores = return_scores
        self.engine = Engine(model_path, threads=threads, quantization=quantization, vision_cache_mb=vision_cache_mb,
                             seed=seed, revision=revision, progress=progress)
        self.model_path = self.engine.model_path

    # ---- visual prompts (as the official worker builds them) ----
    @staticmethod
    def _crop_visual_prompt(image, box: Sequence[float], box_format: str = "normalized_1000"):
        if len(box) != 4:
            raise ValueError("visual_prompt_box must contain four coordinates")
        arr = to_array(image)
        w, h = image_size(arr)
        x1, y1, x2, y2 = [float(v) for v in box]
        if box_format == "normalized_1000":
            left, top, right, bottom = x1 / 1000 * w, y1 / 1000 * h, x2 / 1000 * w, y2 / 1000 * h
        elif box_format == "normalized_1":
            left, top, right, bottom = x1 * w, y1 * h, x2 * w, y2 * h
        elif box_format == "pixel":
            left, top, right, bottom = x1, y1, x2, y2
        else:
            raise ValueError("box_format must be 'normalized_1000', 'normalized_1', or 'pixel'")
        left = max(0, min(w - 1, round(left)))
        top = max(0, min(h - 1, round(top)))
        right = max(left + 1, min(w, round(right)))
        bottom = max(top + 1, min(h, round(bottom)))
        crop = arr[top:bottom, left:right]
        return crop[..., :3] if crop.ndim == 3 and crop.shape[2] == 4 else crop  # convert("RGB") drops alpha

    @staticmethod
    def _replace_visual_prompt_text(question: str, placeholder: str, replace_text: Optional[str]) -> str:
        if replace_text:
            if replace_text not in question:
                raise ValueError(f"replace_text={replace_text!r} was not found in question")
            return question.replace(replace_text, placeholder, 1)
        for marker in ("<visual_prompt>", "{visual_prompt}"):
            if marker in question:
                return question.replace(marker, placeholder, 1)
        return f"{question}\nVisual prompt: {placeholder}"

    @staticmethod
    def _rgb_prompt(img):
        if _is_pil(img):
            return np.asarray(img.convert("RGB"))
        arr = to_array(img)
        return arr[..., :3] if arr.ndim == 3 and arr.shape[2] == 4 else arr

    def _prepare(self, image, question, visual_prompt, visual_prompt_box, visual_prompt_box_format, replace_text):
        """(image, question, visual prompt images) as the official worker builds its messages."""
        prompts = []
        if visual_prompt_box is not None:
            prompts.append(self._crop_visual_prompt(image, visual_prompt_box, visual_prompt_box_format))
        if visual_prompt is not None:
            if isinstance(visual_prompt, (list, tuple)):
                prompts.extend(self._rgb_prompt(v) for v in visual_prompt)
            else:
                prompts.append(self._rgb_prompt(visual_prompt))
        if prompts:
            question = self._replace_visual_prompt_text(question, "<image-2>", replace_text)
        return image, question, prompts

    def _options(self, generation_mode, max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed) -> dict:
        return dict(
            generation_mode=generation_mode,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=max(0, int(top_k)),  # top_k <= 0 means "off", as the official worker sends None
            repetition_penalty=repetition_penalty,
            seed=seed,
            chat_template=self.chat_template,
            loop_guard=self.loop_guard,
        )

    def _result_dict(self, result, verbose: bool) -> dict:
        out = {"answer": result.answer}
        if self.return_scores:
            out["scores"] = {"boxes": [b["score"] for b in result.boxes], "points": [p["score"] for p in result.points]}
        if verbose:
            line = _stats_line(result)
            if self.print_stats:
                print(line)
            out["history"] = list(result.history)
            out["stats"] = Stats(line, {**result.timings, "stop_reason": result.stop_reason,
                                        "loop_guard_fired": result.loop_guard_fired})
        return out

    def _predict_standard(
        self,
        image,
        question: str,
        generation_mode: str,
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        top_k: int,
        repetition_penalty: float,
        verbose: bool,
        visual_prompt=None,
        visual_prompt_box=None,
        visual_prompt_box_format: str = "normalized_1000",
        replace_text: Optional[str] = None,
        seed: Optional[int] = None,
    ) -> dict:
        image, question, prompts = self._prepare(image, question, visual_prompt, visual_prompt_box,
                                                 visual_prompt_box_format, replace_text)
        options = self._options(generation_mode, max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        result = self.engine.run(image, question, visual_prompts=prompts, **options)
        return self._result_dict(result, verbose)

    def predict(
        self,
        image,
        question: str,
        generation_mode: str = DEFAULTS["generation_mode"],
        max_new_tokens: int = DEFAULTS["max_new_tokens"],
        temperature: float = OFFICIAL_SAMPLING["temperature"],
        top_p: float = OFFICIAL_SAMPLING["top_p"],
        top_k: int = 0,
        repetition_penalty: float = OFFICIAL_SAMPLING["repetition_penalty"],
        verbose: bool = True,
        visual_prompt=None,
        visual_prompt_box: Optional[Sequence[float]] = None,
        visual_prompt_box_format: str = "normalized_1000",
        replace_text: Optional[str] = None,
        seed: Optional[int] = None,
    ) -> dict:
        """Runs one perception query; returns {"answer"} plus "history" and "stats" when verbose.

        `seed` (extra, keyword) overrides the worker's sampling seed for this call."""
        return self._predict_standard(
            image,
            question,
            generation_mode,
            max_new_tokens,
            temperature,
            top_p,
            top_k,
            repetition_penalty,
            verbose,
            visual_prompt=visual_prompt,
            visual_prompt_box=visual_prompt_box,
            visual_prompt_box_format=visual_prompt_box_format,
            replace_text=replace_text,
            seed=seed,
        )

    @staticmethod
    def _parse_request(item) -> dict:
        if isinstance(item, dict):
            question = item.get("question", item.get("prompt"))
            if question is None:
                raise ValueError("batch request dict must contain `question` or `prompt`")
            return {
                "image": item["image"],
                "question": question,
                "visual_prompt": item.get("visual_prompt", item.get("visual_prompt_image")),
                "visual_prompt_box": item.get("visual_prompt_box"),
                "visual_prompt_box_format": item.get("visual_prompt_box_format", "normalized_1000"),
                "replace_text": item.get("replace_text"),
            }
        if len(item) == 2:
            image, question = item
            visual_prompt = None
        elif len(item) == 3:
            image, question, visual_prompt = item
        else:
            raise ValueError("batch tuple requests must be (image, question) or (image, question, visual_prompt)")
        return {
            "image": image,
            "question": question,
            "visual_prompt": visual_prompt,
            "visual_prompt_box": None,
            "visual_prompt_box_format": "normalized_1000",
            "replace_text": None,
        }

    def predict_batch(
        self,
        requests: list,
        generation_mode: str = DEFAULTS["generation_mode"],
        max_new_tokens: int = DEFAULTS["max_new_tokens"],
        temperature: float = OFFICIAL_SAMPLING["temperature"],
        top_p: float = OFFICIAL_SAMPLING["top_p"],
        top_k: int = 0,
        repetition_penalty: float = OFFICIAL_SAMPLING["repetition_penalty"],
        scheduler: Optional[str] = None,
        group_size: Optional[int] = None,
        verbose: bool = True,
        seed: Optional[int] = None,
    ) -> list[dict]:
        """Runs `(image, question)` / `(image, question, visual_prompt)` tuples or request dicts together.

        Every row gives the same tokens as `predict` alone; images are encoded once per content, rows on
        the same image share their prompt prefix's KV cache, and decode steps batch all active rows.
        `scheduler` and `group_size` (options of the official GPU batch runtime) are accepted and unused.
        Sampling: each row draws from its own stream (`seed=` fixes this call's streams; see the class)."""
        rows = [self._parse_request(item) for item in requests]
        batch = []
        for row in rows:
            image, question, prompts = self._prepare(row["image"], row["question"], row["visual_prompt"],
                                                     row["visual_prompt_box"], row["visual_prompt_box_format"],
                                                     row["replace_text"])
            batch.append({"image": image, "question": question, "visual_prompts": prompts})
        options = self._options(generation_mode, max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        results = self.engine.run_batch(batch, **options)
        return [self._result_dict(r, verbose) for r in results]

    # ---- convenience methods for each task (the official prompts) ----
    def detect(self, image, categories: list[str], **kwargs) -> dict:
        """Object detection / document layout analysis."""
        return self.predict(image, question("detect", list(categories)), **kwargs)

    def detect_visual_prompt(
        self,
        image,
        visual_prompt=None,
        visual_prompt_box: Optional[Sequence[float]] = None,
        visual_prompt_box_format: str = "normalized_1000",
        **kwargs,
    ) -> dict:
        """Detects objects matching a visual prompt image (or a box cropped from `image`)."""
        if visual_prompt is None and visual_prompt_box is None:
            raise ValueError("detect_visual_prompt requires visual_prompt or visual_prompt_box")
        return self.predict(
            image,
            question("detect_visual_prompt"),
            visual_prompt=visual_prompt,
            visual_prompt_box=visual_prompt_box,
            visual_prompt_box_format=visual_prompt_box_format,
            **kwargs,
        )

    def detect_batch(self, requests: list, **kwargs) -> list[dict]:
        """Batch detection over `(image, categories)` pairs (a list of labels or a pre-joined str)."""
        pairs = [(image, question("detect", categories)) for image, categories in requests]
        return self.predict_batch(pairs, **kwargs)

    def ground_single(self, image, phrase: str, **kwargs) -> dict:
        """Phrase grounding, single instance."""
        return self.predict(image, question("ground_single", phrase), **kwargs)

    def ground_multi(self, image, phrase: str, **kwargs) -> dict:
        """Phrase grounding, multiple instances."""
        return self.predict(image, question("ground_multi", phrase), **kwargs)

    def ground_text(self, image, phrase: str, **kwargs) -> dict:
        """Text grounding."""
        return self.predict(image, question("ground_text", phrase), **kwargs)

    def detect_text(self, image, **kwargs) -> dict:
        """Scene text detection."""
        return self.predict(image, question("detect_text"), **kwargs)

    def ground_gui(self, image, phrase: str, output_type: str = "box", **kwargs) -> dict:
        """GUI grounding (box or point)."""
        task = "ground_gui_point" if output_type == "point" else "ground_gui"
        return self.predict(image, question(task, phrase), **kwargs)

    def point(self, image, phrase: str, **kwargs) -> dict:
        """Pointing."""
        return self.predict(image, question("point", phrase), **kwargs)

    # ---- parsing (identical to the official static methods) ----
    @staticmethod
    def parse_boxes(answer: str, image_width: int, image_height: int) -> list[dict]:
        """Boxes `<box><x1><y1><x2><y2></box>` (0..1000) in pixels of a W×H image (the official rule;
        the package's one parser, rule "worker")."""
        return [dict(zip(("x1", "y1", "x2", "y2"), d["pixels"]))
                for d in _core.parse_answer(answer, image_width, image_height, "worker") if d["kind"] == "box"]

    @staticmethod
    def parse_points(answer: str, image_width: int, image_height: int) -> list[dict]:
        """Points `<box><x><y></box>` (0..1000) in pixels of a W×H image (the official rule; rule "worker")."""
        return [dict(zip(("x", "y"), d["pixels"]))
                for d in _core.parse_answer(answer, image_width, image_height, "worker") if d["kind"] == "point"]
