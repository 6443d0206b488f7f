"""AutoRound W4A16 checkpoints: quantise the fixture's decoder with the real auto-round library
(round-to-nearest mode), save it in auto-round's own format inside a LocateAnything checkpoint, load it
in our engine, and check that our dequantised weights equal auto-round's dequantisation exactly."""
import json
import pathlib
import shutil

import numpy as np
import pytest

auto_round = pytest.importorskip("auto_round")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

import locateanything_native as la  # noqa: E402

LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
           "mlp.up_proj", "mlp.down_proj"]
GROUP = 32  # the fixture's hidden size (64) admits groups of 32


@pytest.fixture(scope="module")
def autoround_checkpoint(fixtures_dir, tmp_path_factory):
    src = fixtures_dir / "tiny-a"
    config = json.loads((src / "config.json").read_text())
    tc = config["text_config"]
    qcfg = transformers.Qwen2Config(
        vocab_size=tc["vocab_size"], hidden_size=tc["hidden_size"], intermediate_size=tc["intermediate_size"],
        num_hidden_layers=tc["num_hidden_layers"], num_attention_heads=tc["num_attention_heads"],
        num_key_value_heads=tc["num_key_value_heads"], tie_word_embeddings=True, rms_norm_eps=tc["rms_norm_eps"],
        rope_theta=tc["rope_theta"])
    model = transformers.Qwen2ForCausalLM(qcfg).to(torch.float32)
    weights = safetensors_torch.load_file(str(src / "model.safetensors"))
    decoder = {k[len("language_model."):]: v.float() for k, v in weights.items() if k.startswith("language_model.")}
    model.load_state_dict(decoder, strict=False)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(fixtures_dir / "tokenizer"))

    work = tmp_path_factory.mktemp("autoround")
    # iters=0 with the optimised RTN off: plain round-to-nearest, no calibration data needed.
    ar = auto_round.AutoRound(model, tokenizer, bits=4, group_size=GROUP, sym=True, iters=0, nsamples=1, seqlen=8,
                              disable_opt_rtn=True)
    ar.quantize_and_save(str(work / "ar"), format="auto_round")
    saved = next(p for p in (work / "ar").rglob("model*.safetensors"))
    quant_config = json.loads((saved.parent / "config.json").read_text())["quantization_config"]
    packed = safetensors_torch.load_file(str(saved))

    # A LocateAnything checkpoint: the fixture's vision tower, projector, embedding and norms, and the
    # decoder linears exactly as auto-round packed them.
    out = work / "la-autoround"
    out.mkdir()
    tensors = {k: v for k, v in weights.items()
               if not any(f".{lin}." in k for lin in LINEARS) or not k.startswith("language_model.model.layers.")}
    for k, v in packed.items():
        if k.startswith("model.layers.") and any(f".{lin}." in k for lin in LINEARS):
            tensors["language_model." + k] = v
    safetensors_torch.save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    config["quantization_config"] = quant_config
    (out / "config.json").write_text(json.dumps(config, indent=1))
    for name in ("vocab.json", "merges.txt", "added_tokens.json", "tokenizer_config.json"):
        shutil.copyfile(fixtures_dir / "tokenizer" / name, out / name)
    shutil.copyfile(src / "preprocessor_config.json", out / "preprocessor_config.json")
    return out, quant_config


def _unpack_nibbles(words: np.ndarray, axis: int) -> np.ndarray:
    """int32 words holding 8 nibbles, low first, expanded along `axis`."""
    w = words.astype(np.uint32)
    parts = [(w >> (4 * i)) & 15 for i in range(8)]
    return np.stack(parts, axis=axis + 1).reshape(
        *w.shape[:axis], w.shape[axis] * 8, *w.shape[axis + 1:]).astype(np.int64)


def test_config_is_auto_round(autoround_checkpoint):
    _, qc = autoround_checkpoint
    assert qc["quant_method"] == "auto-round" and qc["bits"] == 4 and qc["sym"] and qc["group_size"] == GROUP


def test_dequantised_weights_equal_auto_rounds(autoround_checkpoint):
    from auto_round_extension.torch.qlinear_torch_zp import QuantLinear

    ckpt, _ = autoround_checkpoint
    engine = la.Engine(str(ckpt), threads=2, quantization="int4", packed_cache=False)
    exact = la.Engine(str(ckpt), threads=1, quantization="none")
    tensors = safetensors_torch.load_file(str(ckpt / "model.safetensors"))
    for layer in range(2):
        for lin in LINEARS:
            name = f"language_model.model.layers.{layer}.{lin}"
            ours = engine.core.decoder_weight(name)  # float32 [out, in]
            out_f, in_f = ours.shape
            qweight, qzeros, scales = (tensors[f"{name}.{s}"] for s in ("qweight", "qzeros", "scales"))
            # 1. An independent unpacking of auto-round's tensors: (code − zero) · scale in float64.
            codes = _unpack_nibbles(qweight.numpy(), 0)                       # [in, out]
            zeros = _unpack_nibbles(qzeros.numpy(), 1) + 1                     # GPTQ stores zero − 1
            sc = scales.numpy().astype(np.float64)                             # [in/g, out]
            ref = (codes - np.repeat(zeros, GROUP, axis=0)) * np.repeat(sc, GROUP, axis=0)
            np.testing.assert_array_equal(ours.astype(np.float64), ref.T, err_msg=name)
            # 2. auto-round's own QuantLinear: its float16 dequantisation of the same tensors is our exact
            #    value rounded to float16.
            ql = QuantLinear(4, GROUP, in_f, out_f, bias=False)
            ql.qweight.copy_(qweight)
            ql.qzeros.copy_(qzeros)
            ql.scales.copy_(scales)
            theirs = ql(torch.eye(in_f, dtype=torch.float16)).T.numpy()       # rows of W, float16
            np.testing.assert_array_equal(ours.astype(np.float16), theirs, err_msg=name)
            # 3. quantization="none" computes in float32 with exactly these values.
            np.testing.assert_array_equal(exact.core.decoder_weight(name), ours, err_msg=name)


def test_autoround_checkpoint_runs_end_to_end(autoround_checkpoint, fixtures_dir):
    ckpt, _ = autoround_checkpoint
    from PIL import Image

    img = Image.open(fixtures_dir / "images" / "img3_28x28.png")
    for quantization in ("int4", "none"):
        engine = la.Engine(str(ckpt), threads=2, quantization=quantization, packed_cache=False)
        r = engine.point(img, "the circle", max_new_tokens=12)
        assert r.generated_ids and r.stop_reason in ("im_end_token", "max_len", "ar_non_coord_token_stop")
