"""The `locateanything` command line takes what people type: several values and repeats for --categories and
--image (a shell glob), unquoted --phrase / --prompt, `ground_single` for --task, every quantisation the engine
knows; `eval` / `metrics` / `prepare` go to the evaluation CLI; records come from Result.to_dict(). These run
in-process and load no model (the end-to-end runs are in test_cli.py)."""
import pathlib
import sys
import types

import pytest

from locateanything_native import _core, cli


def parse(*argv):
    """The options as main() uses them (argparse, then tidy)."""
    args = cli.build_parser().parse_args(list(argv))
    cli.tidy(args)
    return args


def usage_error(capsys, *argv) -> str:
    """Parses argv, which must be an argparse usage error (exit 2); returns stderr."""
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(list(argv))
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["--categories", "traffic light,car"],
    ["--categories", "traffic light", "car"],
    ["--categories", "traffic light", "--categories", "car"],
    ["--categories", " traffic light , ", ",car,"],
    ["--categories", "traffic light,", "--categories", "car", "--json"],
])
def test_categories_take_spaces_commas_and_repeats(argv):
    assert parse(*argv).categories == ["traffic light", "car"]


def test_categories_reach_the_question():
    args = parse("--categories", "person", "car", "--categories", "dog")
    assert cli.question_for(args) == _core.task_prompt("detect", _core.join_categories(["person", "car", "dog"]))
    with pytest.raises(cli.UsageError, match="--categories"):
        cli.question_for(parse("--categories", " , ", ","))


def test_several_images_after_one_image_option_and_repeats():
    args = parse("--image", "a.jpg", "b.jpg", "c.png", "--categories", "x", "--image", "d/")
    assert args.image == ["a.jpg", "b.jpg", "c.png", "d/"]
    assert parse("--categories", "x").image == []


def test_unquoted_phrase_and_prompt_join_words():
    args = parse("--task", "point", "--phrase", "the", "red", "car", "--json")
    assert args.phrase == "the red car"
    assert cli.question_for(args) == _core.task_prompt("point", "the red car")
    assert parse("--phrase", "the red car").phrase == "the red car"
    assert parse("--task", "raw", "--prompt", "Point", "to:", "the", "door.").prompt == "Point to: the door."
    assert parse("--categories", "x").phrase is None
    # Given twice is ambiguous: a named usage error, not the last one silently.
    with pytest.raises(cli.UsageError, match="--phrase was given 2 times"):
        parse("--phrase", "a", "--phrase", "b")


@pytest.mark.parametrize("typed,task", [("ground_single", "ground-single"), ("ground-single", "ground-single"),
                                        ("detect_text", "detect-text"), ("ground_gui", "ground-gui"),
                                        ("point", "point")])
def test_task_takes_underscores_and_dashes(typed, task):
    assert parse("--task", typed).task == task


def test_invalid_task_is_a_usage_error_naming_the_tasks(capsys):
    err = usage_error(capsys, "--task", "segment")
    assert "invalid choice" in err
    for task in cli.TASKS:
        assert task in err
    # --help shows the dash form only.
    text = cli.build_parser().format_help()
    assert "ground-single" in text and "ground_single}" not in text and "{detect,ground-single," in text


def test_quantization_choices_come_from_the_engine(capsys):
    assert cli.QUANTIZATIONS == tuple(getattr(_core, "QUANTIZATIONS", cli.QUANTIZATIONS))
    for name in ("none", "int8", "int4", "int4-b128", "int4-visf"):
        assert name in cli.QUANTIZATIONS
        assert parse("--quantization", name).quantization == name
    assert parse().quantization == "int4"
    assert "invalid choice" in usage_error(capsys, "--quantization", "q9")


def test_help_shows_the_new_forms_and_the_subcommands():
    text = cli.build_parser().format_help()
    assert "--categories person car" in text
    for word in ("eval", "metrics", "prepare"):
        assert f"locateanything {word} " in text
    assert "default: a fresh stream seeded with 0" in " ".join(text.split())  # help text is wrapped
    assert "--categories person car" in cli.__doc__ and "int4-visf" in cli.__doc__


@pytest.mark.parametrize("command", ["eval", "metrics"])
def test_subcommands_go_to_the_evaluation_cli(monkeypatch, command):
    calls = []
    package = types.ModuleType("locateanything_native.eval")
    package.__path__ = []
    module = types.ModuleType("locateanything_native.eval.cli")
    module.main = lambda argv, cmd: calls.append((argv, cmd)) or 7
    monkeypatch.setitem(sys.modules, "locateanything_native.eval", package)
    monkeypatch.setitem(sys.modules, "locateanything_native.eval.cli", module)
    assert cli.main([command, "--split", "val", "--limit", "3"]) == 7
    assert calls == [(["--split", "val", "--limit", "3"], command)]


def test_subcommand_without_the_evaluation_module_is_a_clear_usage_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "locateanything_native.eval.cli", None)  # import raises ImportError
    assert cli.main(["eval", "--help"]) == 2
    err = capsys.readouterr().err
    assert "locateanything eval" in err and "locateanything_native.eval" in err and "Traceback" not in err


class DictOnlyResult:
    """A result that only answers to_dict(), as engine results will: the record must take everything from it."""

    def to_dict(self):
        return {"answer": "<ref>car</ref><box><100><200><300><400></box>", "generated_ids": [1, 2, 3],
                "boxes": [{"x2": 60.0, "label": "car", "y2": 80.0, "x1": 20.0, "y1": 40.0, "score": 1.0}],
                "points": [{"label": "door", "x": 10.0, "y": 20.0, "score": None}], "stop_reason": "eos",
                "timings": {"decode": 0.5, "generated_tokens": 3}, "width": 200, "height": 200}


def test_record_takes_the_answer_part_from_to_dict():
    args = parse("--categories", "car")
    rec = cli.record("x.png", DictOnlyResult(), (400, 100), args, "Q")
    assert list(rec) == ["image", "width", "height", "input_width", "input_height", "task", "question",
                         "generation_mode", "answer", "boxes", "points", "stop_reason", "timings"]
    assert (rec["width"], rec["height"], rec["input_width"], rec["input_height"]) == (400, 100, 200, 200)
    assert rec["answer"].startswith("<ref>car</ref>") and rec["stop_reason"] == "eos"
    # Only the documented keys, scaled from the 200×200 input to the 400×100 original.
    assert rec["boxes"] == [{"label": "car", "x1": 40.0, "y1": 20.0, "x2": 120.0, "y2": 40.0, "score": 1.0}]
    assert rec["points"] == [{"label": "door", "x": 20.0, "y": 10.0, "score": None}]
    assert rec["timings"] == {"decode": 0.5, "generated_tokens": 3}


def test_prepare_subcommand_builds_the_cache(fixtures_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOCATEANYTHING_CACHE", str(tmp_path))
    assert cli.main(["prepare", "--model", str(fixtures_dir / "tiny-a"), "-q", "int4", "-q", "int8"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["int4", "int8"]
    assert all(pathlib.Path(line.split(": ", 1)[1]).is_file() for line in out)
    assert cli.main(["prepare", "--model", str(tmp_path / "nowhere")]) == 2
