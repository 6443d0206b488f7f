"""Prompt assembly: the official task wordings, both chat templates and image expansion, in ids."""
import json

import pytest

import locateanything_native as la
from locateanything_native import _core

# The official worker's prompts (locateanything_worker.py).
TASKS = {
    ("detect", "a</c>b"): "Locate all the instances that matches the following description: a</c>b.",
    ("ground_single", "x"): "Locate a single instance that matches the following description: x.",
    ("ground_multi", "x"): "Locate all the instances that match the following description: x.",
    ("ground_text", "x"): "Please locate the text referred as x.",
    ("detect_text", ""): "Detect all the text in box format.",
    ("ground_gui", "x"): "Locate the region that matches the following description: x.",
    ("ground_gui_point", "x"): "Point to: x.",
    ("point", "x"): "Point to: x.",
    ("detect_visual_prompt", ""): "Detect all the objects in the image that belong to the category set: <visual_prompt>.",
}


@pytest.mark.parametrize("task,arg", sorted(TASKS))
def test_task_prompts(task, arg):
    assert _core.task_prompt(task, arg) == TASKS[(task, arg)]


def test_unknown_task_is_a_value_error():
    with pytest.raises(ValueError, match="unknown task"):
        _core.task_prompt("segment", "x")


@pytest.fixture(scope="module")
def engine(fixtures_dir):
    return la.Engine(str(fixtures_dir / "tiny-a"), threads=1)


def test_worker_template_matches_fixture_prompts(engine, fixtures_dir):
    tok = _core.Tokenizer(str(fixtures_dir / "tiny-a"))
    for path in sorted((fixtures_dir / "tiny-a" / "cases").glob("*.json")):
        meta = json.loads(path.read_text())
        n = meta["num_image_tokens"]
        expanded = meta["prompt_text"].replace("<image-1>", "<image 1><img>" + "<IMG_CONTEXT>" * n + "</img>")
        assert engine.prompt_ids(meta["question"], [n]) == tok.encode(expanded), path.name


def test_eval_template_is_the_jinja_rendering(engine, fixtures_dir):
    tok = _core.Tokenizer(str(fixtures_dir / "tiny-a"))
    q = "Locate all the instances that matches the following description: person</c>car."
    expected = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                "<image 1><img>" + "<IMG_CONTEXT>" * 7 + "</img>" + q + "<|im_end|>\n<|im_start|>assistant\n")
    assert engine.prompt_ids(q, [7], chat_template="eval") == tok.encode(expected)
    worker_ids = engine.prompt_ids(q, [7], chat_template="worker")
    assert worker_ids != engine.prompt_ids(q, [7], chat_template="eval")
    assert worker_ids.count(engine.image_token_id) == 7


def test_placeholder_in_the_question_is_not_duplicated(engine, fixtures_dir):
    tok = _core.Tokenizer(str(fixtures_dir / "tiny-a"))
    ids = engine.prompt_ids("Compare <image-1> with the scene.", [3])
    assert ids.count(engine.image_token_id) == 3
    assert "<image 1><img>" in tok.decode(ids)
    with pytest.raises(ValueError, match="image-2"):
        engine.prompt_ids("look at <image-2>", [3])
    with pytest.raises(ValueError, match="video"):
        engine.prompt_ids("look at <video-1>", [3])


def test_visual_prompt_image_order(engine, fixtures_dir):
    tok = _core.Tokenizer(str(fixtures_dir / "tiny-a"))
    ids = engine.prompt_ids("find <image-2> here", [2, 5])
    text = tok.decode(ids)
    assert text.index("<image 1>") < text.index("<image 2>")
    assert ids.count(engine.image_token_id) == 7


def test_one_question_builder_for_every_front_end():
    from locateanything_native import prompts

    assert prompts.question("detect", ["a", "b"]) == prompts.question("detect", "a</c>b") == \
        "Locate all the instances that matches the following description: a</c>b."
    assert prompts.question("ground-single", "the cat") == prompts.question("ground_single", "the cat")
    assert prompts.question("detect_text") == "Detect all the text in box format."
    assert prompts.question("detect", []) == "Locate all the instances that matches the following description: ."
    with pytest.raises(ValueError, match="unknown task 'segment'"):
        prompts.question("segment", "x")
    with pytest.raises(ValueError, match="needs its phrase"):
        prompts.question("point")
