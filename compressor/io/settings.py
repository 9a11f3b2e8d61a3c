"""What to load (recipe sections ``model`` and ``inputs``): the checkpoint, its architecture, and its inputs."""

from __future__ import annotations

from typing import Any, Literal, Optional

from compressor.core.options import INPUTS, MODEL, Settings, option
from compressor.core.specs import DTYPES, TASKS, InputSpec


class ModelSettings(Settings):
    checkpoint: str = option(help="state_dict (.pt/.pth/.safetensors, with --arch), TorchScript, torch.export .pt2, or pickled module.")
    arch: Optional[str] = option(None, "Architecture for a state_dict: torchvision:<name> or package.module:callable.", flag="--arch",
                                 panel=MODEL)
    arch_kwargs: dict[str, Any] = option(help="JSON keyword arguments for --arch, e.g. '{\"num_classes\": 10}'.", flag="--arch-kwargs",
                                         parse="json", panel=MODEL, default_factory=dict)
    forward_kwargs: dict[str, Any] = option(help="JSON constant (non-tensor) keyword arguments for the model's forward, e.g. "
                                                 "'{\"sr\": 16000}'; every artifact is built with them fixed.", flag="--forward-kwargs",
                                            parse="json", panel=MODEL, default_factory=dict)
    checkpoint_key: Optional[str] = option(None, "Where the state_dict is in a training checkpoint, e.g. model_state (dotted for "
                                                 "nested keys); by default the only nested state_dict is found and named.",
                                           flag="--checkpoint-key", panel=MODEL)
    trust_checkpoint: bool = option(False, "Allow unpickling a whole pickled module (runs code from the file).", flag="--trust-checkpoint",
                                    panel=MODEL)
    output_names: Optional[list[str]] = option(None, "Output names, one per model output; repeatable.", flag="--output-name",
                                               keyword="output_names", panel=INPUTS)
    task: Literal[TASKS] = option("auto", "What the first output is: auto | classification | embedding | other "  # type: ignore[valid-type]
                                          "(decides which fidelity metrics apply); text-generation: a decoder LM from a "
                                          "Hugging Face folder or .gguf, weight-only INT4/INT8.", flag="--task", panel=MODEL)


class InputSettings(Settings):
    """One model input as a recipe writes it; the CLI's --input-shape/--input-name/--input-dtype make these."""

    name: str = option("input", "Input name.")
    shape: str = option(help="Shape, e.g. 1,3,224,224 or batch=1:32,3,224,224.")
    dtype: Literal[DTYPES] = option("float32", "Element type.")  # type: ignore[valid-type]

    def to_spec(self) -> InputSpec:
        return InputSpec.parse(self.shape, name=self.name, dtype=self.dtype)
