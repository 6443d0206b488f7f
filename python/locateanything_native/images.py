"""Turning what users pass as an image (PIL image, numpy array, path, bytes) into an H×W×C uint8 array.

PIL images follow the official processor: RGBA is composited onto white (done in C++ with Pillow's
rounding), every other mode goes through Pillow's own convert("RGB"). JPEG files and bytes are decoded
by libjpeg-turbo in C++; other formats need Pillow.
"""
from __future__ import annotations

import os
import pathlib

import numpy as np

from . import _core


def _is_pil(obj) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "mode") and hasattr(obj, "convert")


def _from_pil(img) -> np.ndarray:
    if img.mode == "RGBA":
        return np.asarray(img)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img)


def _open_with_pil(source, what: str) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ValueError(
            f"{what} is not a JPEG; reading other formats needs Pillow (pip install pillow), "
            "or pass a numpy H×W×3 uint8 array"
        ) from exc
    try:
        with Image.open(source) as img:
            img.load()
            return _from_pil(img)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"cannot read {what} as an image: {exc}") from exc


def to_array(image) -> np.ndarray:
    """H×W×C uint8 view/copy of `image` (C = 3, or 4 for RGBA that the core composites onto white)."""
    if isinstance(image, np.ndarray):
        return image
    if _is_pil(image):
        return _from_pil(image)
    if isinstance(image, (str, os.PathLike)):
        path = pathlib.Path(image).expanduser()
        if str(image).startswith("file://"):
            path = pathlib.Path(str(image)[7:])
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: '{path}'")
        with open(path, "rb") as f:
            head = f.read(3)
        if head[:2] == b"\xff\xd8":
            return _core.decode_jpeg(str(path))
        return _open_with_pil(path, f"'{path}'")
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if data[:2] == b"\xff\xd8":
            return _core.decode_jpeg(data)
        import io

        return _open_with_pil(io.BytesIO(data), "the image bytes")
    raise ValueError(
        f"unsupported image type {type(image).__name__}: pass a PIL image, a numpy H×W×3 uint8 array, "
        "a file path or encoded bytes"
    )


def image_size(arr: np.ndarray) -> tuple[int, int]:
    """(width, height) of an H×W[×C] array."""
    return int(arr.shape[1]), int(arr.shape[0])
