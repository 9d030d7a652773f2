"""Convert official MIRAGE checkpoints (repository Amazingren/MIRAGE) into `from_pretrained` folders.

The official training script saves PyTorch Lightning `.ckpt` files whose `state_dict` holds the network's
weights under a `net.` prefix; a bare state dict (with or without the prefix) is accepted too. Files are
read with `torch.load(weights_only=True)` only, so a checkpoint cannot run code.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .configuration_mirage import MirageConfig
from .errors import MirageError
from .modeling_mirage import MirageForImageRestoration

VARIANTS = {"tiny": MirageConfig.tiny, "small": MirageConfig.small}

# (official name pattern, our name) applied in order to each key; everything else keeps its name.
KEY_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^patch_embed\.proj\.", "patch_embed."),
    (r"\.norm([12])\.body\.", r".norm\1."),
    (r"\.attn\.qkv\.", ".mixer.attention.qkv."),
    (r"\.attn\.qkv_dwconv\.", ".mixer.attention.qkv_dwconv."),
    (r"\.attn\.temperature$", ".mixer.attention.temperature"),
    (r"\.attn\.gatedcnn\.norm\.", ".mixer.gated_conv.norm."),
    (r"\.attn\.gatedcnn\.gic1\.", ".mixer.gated_conv.in_proj."),
    (r"\.attn\.gatedcnn\.kernel_generator\.1\.", ".mixer.gated_conv.kernel_generator.reduce."),
    (r"\.attn\.gatedcnn\.kernel_generator\.3\.", ".mixer.gated_conv.kernel_generator.expand."),
    (r"\.attn\.gatedcnn\.cconv\.", ".mixer.gated_conv.depthwise."),
    (r"\.attn\.gatedcnn\.gic2\.", ".mixer.gated_conv.out_proj."),
    (r"\.attn\.gatedcnn\.proj_out\.", ".mixer.gated_conv.post_proj."),
    (r"\.attn\.gatedcnn\.temperature$", ".mixer.gated_conv.gate_temperature"),
    (r"\.attn\.mlp\.0\.", ".mixer.mlp.fc1."),
    (r"\.attn\.mlp\.2\.", ".mixer.mlp.fc2."),
    (r"\.attn\.project_out\.", ".mixer.project_out."),
    (r"\.attn\.alpha_att$", ".mixer.alpha_attention"),
    (r"\.attn\.alpha_gated$", ".mixer.alpha_gated_conv"),
    (r"\.attn\.alpha_mlp$", ".mixer.alpha_mlp"),
    (r"^(down\d_\d|up\d_\d)\.body\.0\.", r"\1.conv."),
    (r"^reduce_shallow\.", "spd_head.reduce_shallow."),
    (r"^reduce_latent\.", "spd_head.reduce_latent."),
    (r"^spd_proj_shallow\.", "spd_head.proj_shallow."),
    (r"^spd_proj_latent\.", "spd_head.proj_latent."),
)
_COMPILED_RENAMES = tuple((re.compile(pattern), replacement) for pattern, replacement in KEY_RENAMES)


def convert_key(official_key: str) -> str:
    key = official_key
    for pattern, replacement in _COMPILED_RENAMES:
        key = pattern.sub(replacement, key)
    return key


def convert_state_dict(official_state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official MIRAGE weights (`net.` prefix optional) -> this package's names and shapes."""
    converted = {}
    for official_key, tensor in official_state_dict.items():
        key = convert_key(official_key.removeprefix("net."))
        if ".mixer.mlp.fc" in key and key.endswith(".weight") and tensor.ndim == 3:
            tensor = tensor.unsqueeze(-1)  # Conv1d [out, in, 1] -> 1×1 Conv2d [out, in, 1, 1]
        converted[key] = tensor
    return converted


def load_official_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a Lightning `.ckpt` (weights under `state_dict`) or a bare state dict, safely (weights only)."""
    path = Path(path)
    if not path.is_file():
        raise MirageError(f"{path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle refused by weights_only, truncated file, not a torch file
        raise MirageError(f"{path}: cannot read as a weights-only PyTorch checkpoint ({type(error).__name__}: "
                          f"{str(error).splitlines()[0] if str(error) else 'no detail'})") from None
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        raise MirageError(f"{path}: expected a state dict of tensors (or a Lightning checkpoint with one under 'state_dict')")
    return checkpoint


def convert_checkpoint(path: str | Path, variant: str) -> MirageForImageRestoration:
    """Build the `variant` model and load an official checkpoint into it, refusing any key mismatch."""
    if variant not in VARIANTS:
        raise MirageError(f"unknown variant {variant!r}: choose from {sorted(VARIANTS)}")
    state_dict = convert_state_dict(load_official_state_dict(path))
    model = MirageForImageRestoration(VARIANTS[variant]())
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{key} {tuple(state_dict[key].shape)} vs {tuple(expected[key].shape)}"
        for key in set(expected) & set(state_dict)
        if state_dict[key].shape != expected[key].shape
    )
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches: {', '.join(mismatched[:4])}{' ...' if len(mismatched) > 4 else ''}")
    if problems:
        hint = ""
        width = state_dict.get("patch_embed.weight")
        guessed = {24: "tiny", 30: "small"}.get(width.shape[0]) if width is not None else None
        if guessed and guessed != variant:
            hint = f" (its width {width.shape[0]} is MIRAGE-{guessed}'s: try --variant {guessed})"
        raise MirageError(f"{path} does not match MIRAGE-{variant}{hint}: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=True)
    return model.eval()
