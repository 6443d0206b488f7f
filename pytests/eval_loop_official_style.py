"""An evaluation loop written the way the official evaluation scripts (Embodied/evaluation/inference_*_ddp.py
plus utils/convert_coco_lvis_to_standard_format.py) drive a worker: load once, loop over a JSONL benchmark,
open each image as RGB (optionally shrink its short side), call the task method, parse the labelled boxes in
the image the model saw, map them back to the original size, write the prediction records (JSONL) and a
COCO-style detection list (JSON).

It is written against the official `LocateAnythingWorker` API; the import line is the only line that names
this package. With the official worker installed, that line reads
    from locateanything_worker import LocateAnythingWorker

    python3 pytests/eval_loop_official_style.py --model_path /path/to/LocateAnything-3B \
        --test_jsonl_path bench.jsonl --image_root_dir images/ --coco_json instances.json \
        --save_path out/eval.jsonl --coco_out out/detections.json

Each JSONL line: {"image_path", "categories", "task_name" ("detection" | "grounding" | "pointing"),
"dataset_name", "gt"}.
"""
import argparse
import json
import os
import re
import sys
import time

from PIL import Image

from locateanything_native import LocateAnythingWorker

REF_PATTERN = re.compile(r"<ref>([^<]+)</ref>((?:<box>.*?</box>)+)")
COORD = r"<\s*([0-9]+(?:\.[0-9]+)?)\s*>\s*"
POINT_PATTERN = re.compile(r"<box>\s*" + COORD * 2 + r"</box>")
BOX_PATTERN = re.compile(r"<box>\s*" + COORD * 4 + r"</box>")


def get_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_path", required=True)
    parser.add_argument("--test_jsonl_path", required=True)
    parser.add_argument("--image_root_dir", default="")
    parser.add_argument("--save_path", required=True, help="prediction records (JSONL)")
    parser.add_argument("--coco_json", default=None, help="COCO/LVIS annotations: image ids and categories")
    parser.add_argument("--coco_out", default=None, help="COCO-style detections (JSON list)")
    parser.add_argument("--max_new_tokens", type=int, default=4096)
    parser.add_argument("--generation_mode", default="hybrid", choices=["fast", "slow", "hybrid"])
    parser.add_argument("--short_side_size", type=int, default=None)
    return parser.parse_args(argv)


def load_test_data(path):
    with open(path, "r", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def resize_short_side(image, short_side):
    """Short side to `short_side` (bilinear), as the official --short_side_size; returns the scale too."""
    w, h = image.size
    scale = short_side / min(w, h)
    new_size = (short_side, int(h * scale)) if w <= h else (int(w * scale), short_side)
    return image.resize(new_size, Image.BILINEAR), scale


def to_pixels(values, w, h):
    return [max(0.0, min(v * (w if i % 2 == 0 else h) / 1000.0, (w if i % 2 == 0 else h) - 1.0))
            for i, v in enumerate(values)]


def parse_prediction(text, w, h):
    """{label: [[x1, y1, x2, y2] | [x, y], ...]}: boxes after a <ref>, clamped to the image, corners ordered."""
    result = {}
    for label, boxes in REF_PATTERN.findall(text):
        for match in POINT_PATTERN.findall(boxes):
            v = [float(s) for s in match]
            if all(0 <= c <= 10000 for c in v):
                result.setdefault(label, []).append(to_pixels(v, w, h))
        for match in BOX_PATTERN.findall(boxes):
            v = [float(s) for s in match]
            if all(0 <= c <= 10000 for c in v):
                x1, y1, x2, y2 = to_pixels(v, w, h)
                result.setdefault(label, []).append([min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)])
    return result


def run_task(worker, image, entry, args):
    """The answer string and the question asked, through the worker's task methods."""
    categories = entry["categories"]
    kwargs = dict(generation_mode=args.generation_mode, max_new_tokens=args.max_new_tokens, verbose=False)
    task = entry.get("task_name", "detection")
    if task == "detection":
        out = worker.detect(image, categories, **kwargs)
        question = "Locate all the instances that matches the following description: " + "</c>".join(categories) + "."
    elif task == "grounding":
        out = worker.ground_multi(image, categories[0], **kwargs)
        question = categories[0]
    elif task == "pointing":
        out = worker.point(image, categories[0], **kwargs)
        question = "Point to: " + categories[0] + "."
    else:
        raise ValueError(f"unknown task_name {task!r}")
    return out["answer"], question


def to_coco_detections(predictions, coco):
    """The official converter's rules: category names matched lower-cased with '_' as ' ', bbox [x, y, w, h],
    conf 0.2 for every box, points skipped, only categories in the image's ground truth."""
    name_to_id = {c["name"].lower().replace("_", " "): c["id"] for c in coco["categories"]}
    path_to_id = {os.path.basename(img["file_name"]): img["id"] for img in coco["images"]}
    gt_cats = {}
    for ann in coco.get("annotations", []):
        gt_cats.setdefault(ann["image_id"], set()).add(ann["category_id"])
    detections = []
    for pred in predictions:
        name = os.path.basename(pred["image_path"])
        if name not in path_to_id:
            raise ValueError(f"image {name} is not in the COCO json")
        image_id = path_to_id[name]
        for label, coords in pred["extracted_predictions"].items():
            cat_id = name_to_id.get(label.lower().replace("_", " "))
            if cat_id is None or (image_id in gt_cats and cat_id not in gt_cats[image_id]):
                continue
            for coord in coords:
                if len(coord) != 4:
                    continue
                x1, y1, x2, y2 = coord
                detections.append({"image_id": image_id, "category_id": cat_id,
                                   "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 0.2})
    return detections


def main(argv=None):
    args = get_args(argv)
    worker = LocateAnythingWorker(args.model_path)
    test_data = load_test_data(args.test_jsonl_path)
    predictions = []
    start = time.time()
    for n, entry in enumerate(test_data, 1):
        full_path = os.path.join(args.image_root_dir, entry["image_path"]) if args.image_root_dir else entry["image_path"]
        if not os.path.exists(full_path):
            print(f"Warning: image not found: {full_path}")
            continue
        image = Image.open(full_path).convert("RGB")
        scale = 1.0
        if args.short_side_size is not None:
            image, scale = resize_short_side(image, args.short_side_size)
        output, question = run_task(worker, image, entry, args)
        extracted = parse_prediction(output, *image.size)
        if scale != 1.0:
            extracted = {k: [[c / scale for c in coords] for coords in v] for k, v in extracted.items()}
        predictions.append({
            "image_path": entry["image_path"],
            "extracted_predictions": extracted,
            "gt": entry.get("gt", {}),
            "question": question,
            "dataset_name": entry.get("dataset_name", ""),
            "raw_response": output,
            "task_name": entry.get("task_name", "detection"),
        })
        print(f"[{n}/{len(test_data)}] {entry['image_path']}: {output[:80]}... ({time.time() - start:.1f}s)")

    save_dir = os.path.dirname(args.save_path)
    if save_dir:
        os.makedirs(save_dir, exist_ok=True)
    with open(args.save_path, "w", encoding="utf-8") as f:
        for p in predictions:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    print(f"Saved {len(predictions)} predictions to {args.save_path}")
    if args.coco_json and args.coco_out:
        with open(args.coco_json, "r", encoding="utf-8") as f:
            coco = json.load(f)
        detections = to_coco_detections(predictions, coco)
        with open(args.coco_out, "w", encoding="utf-8") as f:
            json.dump(detections, f)
        print(f"Saved {len(detections)} COCO-style detections to {args.coco_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
