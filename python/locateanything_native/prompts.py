"""One question builder per task, shared by the engine, the worker, the CLI, the Ray predictor and the
evaluation classes. The texts themselves live in the C++ core (`_core.task_prompt`); this module
names the tasks, accepts their arguments in the forms people pass them, and refuses what is missing."""
from __future__ import annotations

from typing import Iterable, Union

from . import _core

# Task → what its argument is ("categories", "phrase" or None).
TASKS = {
    "detect": "categories",
    "ground_single": "phrase",
    "ground_multi": "phrase",
    "ground_text": "phrase",
    "detect_text": None,
    "ground_gui": "phrase",
    "ground_gui_point": "phrase",
    "point": "phrase",
    "detect_visual_prompt": None,
}

Categories = Union[str, Iterable[str]]


def task_name(task: str) -> str:
    """"ground-single" / "ground_single" → "ground_single"; ValueError naming the tasks otherwise."""
    name = str(task).strip().lower().replace("-", "_")
    if name not in TASKS:
        raise ValueError(f"unknown task {task!r}: use one of {', '.join(TASKS)}")
    return name


def join_categories(categories: Categories) -> str:
    """A list of labels joined with </c> as the official detect() does; a str is taken as joined already."""
    if isinstance(categories, str):
        return categories
    return _core.join_categories([str(c) for c in categories])


def question(task: str, arg: Categories | None = None) -> str:
    """The official worker's question for `task`: `arg` is the categories (a list or a joined str) for
    detect, the phrase for the grounding, pointing and GUI tasks, nothing for detect_text and
    detect_visual_prompt."""
    name = task_name(task)
    kind = TASKS[name]
    if kind is None:
        return _core.task_prompt(name, "")
    if arg is None:  # an empty phrase or list is sent as the official worker sends it
        raise ValueError(f"task {name!r} needs its {kind}")
    return _core.task_prompt(name, join_categories(arg) if kind == "categories" else str(arg))
