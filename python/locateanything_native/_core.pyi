"""
locateanything_native C++ core (exact CPU inference for LocateAnything-3B)
"""
from __future__ import annotations

import collections.abc
import typing

import numpy
import numpy.typing

__all__: list[str] = ['Engine', 'GENERATION_DEFAULTS', 'QUANTIZATIONS', 'Result', 'Tokenizer', 'check_generation', 'decode_jpeg', 'default_thread_budget', 'isa', 'join_categories', 'parse_answer', 'plan_resize', 'preprocess', 'resize_bicubic', 'task_prompt', 'to_rgb']
class Tokenizer:
    """
    Qwen2 byte-level BPE tokenizer of a LocateAnything checkpoint; matches the Hugging Face fast tokenizer id for id.
    """
    def __init__(self, model_dir: typing.Any) -> None:
        """
        Loads tokenizer.json, or vocab.json + merges.txt + added_tokens.json + tokenizer_config.json, from the checkpoint folder.
        """
    def __repr__(self) -> str:
        ...
    def decode(self, ids: typing.Any) -> str:
        """
        Text of `ids`; special tokens are kept, invalid UTF-8 becomes U+FFFD. Unknown ids raise ValueError.
        """
    def encode(self, text: typing.Any) -> list[int]:
        """
        Token ids of `text` (str, or bytes taken as UTF-8; invalid bytes are kept as byte tokens). Added and special tokens written in the text become single ids; no BOS/EOS is added.
        """
    def id_to_token(self, id: typing.SupportsInt | typing.SupportsIndex) -> str:
        """
        Added-token text, or the byte-level form of a vocabulary entry (e.g. 'Ġthe').
        """
    def is_added_token(self, id: typing.SupportsInt | typing.SupportsIndex) -> bool:
        ...
    def is_special_token(self, id: typing.SupportsInt | typing.SupportsIndex) -> bool:
        ...
    def token_to_id(self, token: str) -> int | None:
        """
        Id of a vocabulary entry (byte-level form) or added token, or None.
        """
    @property
    def model_max_length(self) -> int:
        """
        model_max_length of tokenizer_config.json (0 when absent or unbounded).
        """
    @property
    def vocab_size(self) -> int:
        """
        One past the largest token id.
        """
class Result:
    """
    Outcome of one query: answer, parsed items, timings, decoding trace.
    """
    __hash__: typing.ClassVar[None] = None  # type: ignore[assignment]  # results compare by value
    def __copy__(self) -> Result:
        ...
    def __deepcopy__(self, memo: dict) -> Result:
        ...
    def __eq__(self, arg0: typing.Any) -> typing.Any:
        ...
    def __getstate__(self) -> dict:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, arg0: dict) -> None:
        ...
    def to_dict(self) -> dict:
        """
        The result as plain Python types: answer, width, height, boxes ([{label, x1, y1, x2, y2, score}]), points ([{label, x, y, score}]), none_count, stop_reason, generated_ids, forward_calls, switch_to_ar, loop_guard_fired, timings. JSON-serialisable; the CLI's records hold these keys.
        """
    @property
    def answer(self) -> str:
        ...
    @property
    def boxes(self) -> list:
        ...
    @property
    def forward_calls(self) -> int:
        ...
    @property
    def generated_ids(self) -> list[int]:
        ...
    @property
    def height(self) -> int:
        ...
    @property
    def history(self) -> list[tuple[str, str]]:
        ...
    @property
    def loop_guard_fired(self) -> bool:
        ...
    @property
    def none_count(self) -> int:
        ...
    @property
    def points(self) -> list:
        ...
    @property
    def prompt_ids(self) -> list[int]:
        ...
    @property
    def step_times(self) -> list:
        """
        (chunk rows, is_mtp, seconds, tokens committed) of every forward pass, in order
        """
    @property
    def steps(self) -> list:
        ...
    @property
    def stop_reason(self) -> str:
        ...
    @property
    def switch_to_ar(self) -> int:
        ...
    @property
    def timings(self) -> dict:
        ...
    @property
    def token_probs(self) -> list[float]:
        """
        probability of each generated id under the distribution it was drawn from
        """
    @property
    def width(self) -> int:
        ...
class Engine:
    """
    A loaded LocateAnything checkpoint; load once, run many queries.
    """
    def __init__(self, model_dir: str, threads: typing.SupportsInt | typing.SupportsIndex = 0, quantization: str = 'int4', vision_cache_bytes: typing.SupportsInt | typing.SupportsIndex = 0, packed_cache: str = '', progress: typing.Any = None) -> None:
        """
        progress(stage, fraction, message), when given, hears what the load is doing: stages open, map_cache, build_cache, quantise (fraction of the checkpoint converted), write_cache, done.
        """
    def decode(self, arg0: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> str:
        ...
    def decoder_weight(self, name: str) -> numpy.typing.NDArray[numpy.float32]:
        """
        A decoder matrix as float32 [out, in], dequantised exactly when quantised.
        """
    def encode(self, arg0: str) -> list[int]:
        ...
    def memory_report(self) -> dict:
        """
        Weight bytes by part, the bytes a decode step streams, and KV-cache bytes per token.
        """
    def prefill_logits(self, input_ids: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], image_rows: typing.Any = None, last_n: typing.SupportsInt | typing.SupportsIndex = 1) -> numpy.typing.NDArray[numpy.float32]:
        """
        Causal forward of input_ids (image rows spliced at <IMG_CONTEXT>); logits of the last rows.
        """
    def preprocess(self, image: numpy.ndarray) -> tuple[numpy.typing.NDArray[numpy.float32], tuple[int, int]]:
        """
        pixel_values [N, 3, p, p] float32 and the grid (h, w), as the official processor.
        """
    def project(self, merged: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> numpy.typing.NDArray[numpy.float32]:
        ...
    def prompt_ids(self, question: str, image_tokens: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], chat_template: str = 'worker') -> list[int]:
        ...
    def run(self, images: list, question: str, generation_mode: str = 'hybrid', max_new_tokens: typing.SupportsInt | typing.SupportsIndex = 2048, temperature: typing.SupportsFloat | typing.SupportsIndex = 0.0, top_p: typing.SupportsFloat | typing.SupportsIndex = 1.0, top_k: typing.SupportsInt | typing.SupportsIndex = 0, repetition_penalty: typing.SupportsFloat | typing.SupportsIndex = 1.0, seed: typing.SupportsInt | typing.SupportsIndex = 0, loop_guard: bool = False, record_steps: bool = False, chat_template: str = 'worker') -> Result:
        """
        Runs the whole pipeline on images (list of H×W×C uint8 arrays; the first is the image, the rest visual prompts) and a question.
        """
    def run_batch(self, requests: list, generation_mode: str = 'hybrid', max_new_tokens: typing.SupportsInt | typing.SupportsIndex = 2048, temperature: typing.SupportsFloat | typing.SupportsIndex = 0.0, top_p: typing.SupportsFloat | typing.SupportsIndex = 1.0, top_k: typing.SupportsInt | typing.SupportsIndex = 0, repetition_penalty: typing.SupportsFloat | typing.SupportsIndex = 1.0, seed: typing.SupportsInt | typing.SupportsIndex = 0, loop_guard: bool = False, record_steps: bool = False, chat_template: str = 'worker') -> list[Result]:
        """
        Runs many requests ({'images': [...], 'question': str, optional per-row overrides of the keyword options}) together; each row is token-identical to running it alone.
        """
    def set_vision_cache(self, max_bytes: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        Keeps image encodings across calls, up to max_bytes of features (0 = off).
        """
    def vision_features(self, pixel_values: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], grid: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], project: bool = False) -> numpy.typing.NDArray[numpy.float32]:
        """
        Vision tower output after the 2x2 merge ([tokens, 4*hidden]); with project=True after mlp1.
        """
    @property
    def image_token_id(self) -> int:
        ...
    @property
    def load_seconds(self) -> float:
        ...
    @property
    def model_max_length(self) -> int:
        ...
    @property
    def notes(self) -> list[str]:
        ...
    @property
    def packed_cache_file(self) -> str:
        ...
    @property
    def quantization(self) -> str:
        ...
    @property
    def threads(self) -> int:
        ...
    @property
    def threads_source(self) -> str:
        """
        what set the thread count: the threads argument, the affinity mask, the cgroup CPU quota, LOCATEANYTHING_THREADS or OMP_NUM_THREADS
        """
    @property
    def vision_cache_bytes(self) -> int:
        ...
    @property
    def vision_cache_entries(self) -> int:
        ...
    @property
    def vocab_size(self) -> int:
        ...
    @property
    def weight_bytes(self) -> int:
        ...
def check_generation(generation_mode: str = 'hybrid', max_new_tokens: typing.SupportsInt | typing.SupportsIndex = 2048, temperature: typing.SupportsFloat | typing.SupportsIndex = 0.0, top_p: typing.SupportsFloat | typing.SupportsIndex = 1.0, top_k: typing.SupportsInt | typing.SupportsIndex = 0, repetition_penalty: typing.SupportsFloat | typing.SupportsIndex = 1.0) -> None:
    """
    ValueError naming the first generation option out of range (the checks every run makes).
    """
def decode_jpeg(source: typing.Any) -> numpy.typing.NDArray[numpy.uint8]:
    """
    Decodes a JPEG (path or bytes) to an (H, W, 3) uint8 RGB array with libjpeg-turbo's accurate IDCT and fancy upsampling, as Pillow decodes it (grey replicated, CMYK converted like PIL). No EXIF rotation.
    """
def default_thread_budget() -> tuple[int, str]:
    """
    (threads, source): the thread count an engine takes by default in this process, and why.
    """
def isa() -> str:
    """
    The kernel instruction set in use.
    """
def join_categories(categories: collections.abc.Sequence[str]) -> str:
    """
    Categories joined with </c>, as detect().
    """
def kernels() -> dict:
    """
    The dispatcher's kernel choices in this process: ISA, the int8 dot instruction, whether the AVX-512 BF16 units are used, the quantised plans' vision attention, and the version of the quantised products' numerics.
    """
def parse_answer(answer: str, width: typing.SupportsFloat | typing.SupportsIndex, height: typing.SupportsFloat | typing.SupportsIndex, rule: str = 'worker') -> list:
    """
    Items of an answer as [{kind, label, values, pixels[, start]}], by rule: 'worker' (the official worker's parse_boxes / parse_points, labels carried from the last <ref>), 'eval' (the evaluation scripts' parse_prediction: labelled runs, clamped, corners ordered) or 'eval_boxes' (boxes only).
    """
def plan_resize(width: typing.SupportsInt | typing.SupportsIndex, height: typing.SupportsInt | typing.SupportsIndex, in_token_limit: typing.SupportsInt | typing.SupportsIndex = 25600, patch_size: typing.SupportsInt | typing.SupportsIndex = 14, merge_size: typing.SupportsInt | typing.SupportsIndex = 2) -> dict:
    """
    The sizes the preprocessing resizes an image of width x height to: dict with w1, h1 (after the token-limit downscale), w2, h2 (after snapping) and grid_h, grid_w (patches). Raises ValueError when a grid side would reach 512.
    """
def preprocess(image: typing.Any, in_token_limit: typing.SupportsInt | typing.SupportsIndex = 25600, patch_size: typing.SupportsInt | typing.SupportsIndex = 14, merge_size: typing.SupportsInt | typing.SupportsIndex = 2, pass_order: str = 'pillow13') -> tuple:
    """
    The official image preprocessing: token-limit downscale and snap to multiples of patch*merge with Pillow-exact BICUBIC resizes, ((u8/255) - 0.5)/0.5 in float32, patchified.

    image: uint8 ndarray (H, W) or (H, W, C), C = 1 grey, 2 grey+alpha (alpha dropped), 3 RGB, 4 RGBA (composited on white); any strides.
    pass_order: 'pillow13' (default) or 'pillow12', the Pillow whose resize pass order to reproduce (they differ only for images more than about twice as tall as wide that exceed the token limit).
    Returns (pixel_values float32 [gh*gw, 3, patch, patch], (gh, gw)).
    """
def resize_bicubic(image: typing.Any, width: typing.SupportsInt | typing.SupportsIndex, height: typing.SupportsInt | typing.SupportsIndex, pass_order: str = 'pillow13') -> numpy.typing.NDArray[numpy.uint8]:
    """
    Byte-identical to PIL Image.resize((width, height), Image.BICUBIC) for an (H, W, 3) uint8 RGB image. pass_order: 'pillow13' (default) or 'pillow12', the Pillow release whose order of the two 1-D passes to follow.
    """
def task_prompt(task: str, arg: str = '') -> str:
    """
    The official worker's prompt for a task (detect, ground_single, ground_multi, ground_text, detect_text, ground_gui, ground_gui_point, point, detect_visual_prompt).
    """
def to_rgb(image: typing.Any) -> numpy.typing.NDArray[numpy.uint8]:
    """
    Converts an (H, W) or (H, W, C) uint8 image to (H, W, 3) RGB as the processor does: grey replicated, grey+alpha drops alpha, RGBA composited on white.
    """
GENERATION_DEFAULTS: dict = {'generation_mode': 'hybrid', 'max_new_tokens': 2048, 'temperature': 0.0, 'top_p': 1.0, 'top_k': 0, 'repetition_penalty': 1.0, 'loop_guard': False, 'max_new_tokens_limit': 16777216}
QUANTIZATIONS: list = ['int4', 'int4-b128', 'int8', 'none', 'int4-visf', 'int4-b128-visf', 'int8-visf']
