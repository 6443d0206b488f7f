"""Writes a full-size LocateAnything checkpoint with random weights in the released layout (sharded bf16
safetensors + configs + the real tokenizer files), cached on disk, for benchmarks.

    python3 bench/make_random_checkpoint.py --out bench/cache/random-full
Dimensions come from ../shared/fixtures/full-size/config.json; the tokenizer from ../shared/fixtures/tokenizer.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys
import time

from locateanything_native.checkpoint import write_preprocessor_config, write_random_weights

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE.parent.parent / "shared" / "fixtures"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(HERE / "cache" / "random-full"))
    p.add_argument("--config", default=str(FIXTURES / "full-size" / "config.json"))
    p.add_argument("--tokenizer", default=str(FIXTURES / "tokenizer"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="rewrite even if the checkpoint exists")
    args = p.parse_args()
    out = pathlib.Path(args.out)
    if (out / "model.safetensors.index.json").is_file() and not args.force:
        print(f"{out} exists (use --force to rewrite)")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    config = json.loads(pathlib.Path(args.config).read_text())
    (out / "config.json").write_text(json.dumps(config, indent=1))
    write_preprocessor_config(out)
    tok = pathlib.Path(args.tokenizer)
    for name in ("vocab.json", "merges.txt", "added_tokens.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(tok / name, out / name)
    start = time.time()
    write_random_weights(out, config, seed=args.seed, std=0.02)
    print(f"wrote {out} in {time.time() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
