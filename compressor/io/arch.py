"""Architecture references: ``torchvision:<model name>`` or ``package.module:callable``."""

from __future__ import annotations

import difflib
import json
from typing import Any

from compressor.core.errors import CheckpointError, InputError
from compressor.core.refs import resolve


def parse_kwargs(text: str | dict | None, flag: str = "--arch-kwargs", example: str = '{"num_classes": 10}') -> dict[str, Any]:
    """A JSON object given on the command line; errors name the ``flag`` it came from."""
    if text is None or text == "":
        return {}
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{flag} is not valid JSON ({e.msg} at column {e.colno}): write it like '{example}'")
    if not isinstance(value, dict):
        raise InputError(f"{flag} must be a JSON object, like '{example}'")
    return value


#: the example each JSON flag's errors show
JSON_EXAMPLES = {"--arch-kwargs": '{"num_classes": 10}', "--forward-kwargs": '{"sr": 16000}'}


def build_architecture(ref: str, kwargs: dict[str, Any] | None = None):
    """Instantiate the nn.Module that ``ref`` names, with random weights."""
    kwargs = kwargs or {}
    if ":" not in ref:
        raise InputError(f"cannot read --arch '{ref}': write torchvision:<model name> or package.module:callable")
    where, name = ref.split(":", 1)
    if where == "torchvision":
        import torchvision

        known = torchvision.models.list_models()
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise InputError(f"torchvision has no model '{name}'{hint}: see torchvision.models.list_models()")
        return torchvision.models.get_model(name, weights=None, **kwargs)
    factory = resolve(ref, "--arch")
    if not callable(factory):
        raise InputError(f"'{ref}' given as --arch is not callable: name a function or class that builds the model")
    try:
        model = factory(**kwargs)
    except TypeError as e:
        raise InputError(f"calling {ref} with {kwargs or 'no arguments'} failed: {e}")
    import torch

    if not isinstance(model, torch.nn.Module):
        raise InputError(f"--arch '{ref}' returned {type(model).__name__}, not a torch.nn.Module")
    return model


def load_weights(model, state: dict, ref: str) -> None:
    """Load ``state`` strictly, explaining any mismatch by name and shape."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) e.g. {', '.join(missing[:3])}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) e.g. {', '.join(unexpected[:3])}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es) e.g. {'; '.join(mismatched[:3])} (checkpoint vs model)")
        hint = (" If it was pruned, save it with the SDK (--save-pruned) so its pruned architecture travels with it"
                if mismatched and not missing and not unexpected else "")
        raise CheckpointError(
            f"the state_dict does not fit --arch {ref}: {'; '.join(parts)}. Check the architecture and its --arch-kwargs.{hint}"
        )
    model.load_state_dict(state, strict=True)


def check_finite_weights(state: dict) -> None:
    """Refuse weights with NaN/inf: a diverged training run or a damaged file, and every artifact made from it is noise."""
    import torch

    bad = [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"the checkpoint has NaN/inf values in {len(bad)} tensor(s), e.g. {', '.join(bad[:3])}: the training diverged "
                              "or the file is damaged; use an earlier or re-saved checkpoint")
