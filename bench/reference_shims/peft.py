"""Import shim: the official model imports LoRA helpers it only uses for fine-tuning."""


class LoraConfig:  # noqa: D101 - never instantiated at inference
    def __init__(self, *args, **kwargs):
        raise RuntimeError("LoRA is not available in the benchmark environment")


def get_peft_model(*args, **kwargs):
    raise RuntimeError("LoRA is not available in the benchmark environment")
