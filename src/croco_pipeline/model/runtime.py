"""Where a model runs and how a trained one comes back: the device choice and the saved bundle."""

from __future__ import annotations

from typing import Any

import torch

from croco_pipeline.errors import bad_param
from croco_pipeline.model.models import CrocoModel, ModelConfig, build_model


def resolve_device(name: str, param: str = "train.device") -> torch.device:
    """``auto`` means CUDA when available, else CPU; ``param`` names the setting in errors."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise bad_param(param, name, "cpu or auto: CUDA is not available here")
    return torch.device(name)


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``model``'s weights and buffers."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def load_model(bundle: dict[str, Any]) -> CrocoModel:
    """Rebuild the trained model, in eval mode, from the ``croco_model`` dataset's content."""
    model = build_model(ModelConfig(**bundle["config"]))
    model.load_state_dict(bundle["state_dict"])
    # channels_last weights with channels_last inputs (retrieval.embed_patches): fastest NHWC path
    return model.eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
