"""Pieces of `training/train.py` that tests and other scripts share: the learning-rate schedule, recipe
files merged with command-line overrides, checkpoint folders, and the model card of a trained model."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import MirageError

MODEL_CARD_TEMPLATE = Path(__file__).resolve().parents[2] / "model_cards" / "model_card_template.md"


# ----------------------------------------------------------------------------------------------------------
# Learning rate: linear warm-up from 0, then cosine towards 0.
# ----------------------------------------------------------------------------------------------------------


def warmup_cosine_factor(position: float, warmup: float, cosine_end: float) -> float:
    """Multiplier of the base learning rate at `position` (epochs or steps, counted from 0).

    The closed form of the official `LinearWarmupCosineAnnealingLR` (start and minimum lr 0): during warm-up
    `position / (warmup - 1)` (so position 0 trains at lr 0 and position `warmup - 1` at the full lr), then
    `0.5 * (1 + cos(pi * (position - warmup) / (cosine_end - warmup)))`. As in the official code the cosine is
    not clamped: past `cosine_end` the rate rises again (CDD-11's 170 epochs with a 150-epoch cosine).
    """
    if position < warmup:
        return position / (warmup - 1) if warmup > 1 else 1.0
    if cosine_end <= warmup:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (position - warmup) / (cosine_end - warmup)))


def lr_lambda(unit: str, warmup: float, cosine_end: float, steps_per_epoch: int):
    """A `LambdaLR` multiplier of the optimizer step. `unit="epoch"`: constant within an epoch, as the official
    code steps its scheduler once per epoch; `unit="step"`: `warmup` and `cosine_end` count optimizer steps."""
    if unit not in ("epoch", "step"):
        raise MirageError(f"lr_schedule_unit must be 'epoch' or 'step', got {unit!r}")

    def factor(step: int) -> float:
        position = step // steps_per_epoch if unit == "epoch" else step
        return warmup_cosine_factor(position, warmup, cosine_end)

    return factor


# ----------------------------------------------------------------------------------------------------------
# Recipes: a YAML file gives the defaults, the command line overrides them.
# ----------------------------------------------------------------------------------------------------------


def load_recipe(path: str | Path) -> dict[str, Any]:
    """A recipe YAML file as a flat {option: value} dict (keys are the `train.py` option names)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise MirageError(f"recipe {path} not found")
    try:
        recipe = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise MirageError(f"recipe {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(recipe, dict):
        raise MirageError(f"recipe {path} must be a mapping of option: value")
    return recipe


def parse_with_recipe(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse `argv` with the values of `--recipe` (if given) as defaults: command line > recipe > parser defaults.

    Unknown recipe keys are an error (a typo in a recipe must not be silently ignored).
    """
    first, _ = parser.parse_known_args(argv)
    if getattr(first, "recipe", None):
        recipe = load_recipe(first.recipe)
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(recipe) - known)
        if unknown:
            raise MirageError(f"recipe {first.recipe}: unknown option(s) {', '.join(unknown)}")
        parser.set_defaults(**recipe)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------------------------------------
# Checkpoints: `output_dir/checkpoint-<step>` folders written by `Accelerator.save_state`.
# ----------------------------------------------------------------------------------------------------------


def checkpoint_step(path: str | Path) -> int:
    match = re.fullmatch(r"checkpoint-(\d+)", Path(path).name)
    if match is None:
        raise MirageError(f"{path} is not a checkpoint folder (expected checkpoint-<step>)")
    return int(match.group(1))


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """`checkpoint-<step>` folders under `output_dir`, oldest first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)]
    return sorted(found, key=checkpoint_step)


def resolve_checkpoint(resume_from: str, output_dir: str | Path) -> Path | None:
    """`latest` -> the newest checkpoint in `output_dir` (None if there is none yet); else the given folder."""
    if resume_from == "latest":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    path = Path(resume_from)
    if not path.is_dir():
        raise MirageError(f"checkpoint {resume_from} not found")
    checkpoint_step(path)
    return path


# ----------------------------------------------------------------------------------------------------------
# Model card.
# ----------------------------------------------------------------------------------------------------------


def render_model_card(
    model_name: str,
    results: dict[str, dict[str, float]],
    recipe: dict[str, Any],
    command: str,
    data_description: str,
    model_description: str,
    training_description: str = "",
    datasets: Sequence[str] = (),
    model_id: str | None = None,
    template_path: str | Path = MODEL_CARD_TEMPLATE,
):
    """Render `model_cards/model_card_template.md` into a `huggingface_hub.ModelCard`.

    `results` ({set: {"psnr", "ssim", ...}}; extra "input_psnr"/"input_ssim" keys are shown in the table)
    become model-index entries; the recipe, the data and the exact command are written in the card.
    `model_id` is the name shown in the loading example (a Hub id or bundled name; default `model_name`).
    """
    import yaml
    from huggingface_hub import ModelCard, ModelCardData

    from .evaluation import eval_results

    card_data = ModelCardData(
        model_name=model_name,
        license="mit",
        library_name="transformers",
        pipeline_tag="image-to-image",
        tags=["image-restoration", "all-in-one", "mirage", "mirage_hf"],
        datasets=list(datasets) or None,
        eval_results=eval_results(results) if results else None,
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        model_description=model_description,
        data_description=data_description,
        training_description=training_description,
        results=results,
        has_input_scores=bool(results) and all("input_psnr" in r for r in results.values()),
        model_id=model_id,
        recipe_yaml=yaml.safe_dump(recipe, sort_keys=False).strip(),
        command=command,
    )


__all__ = [
    "checkpoint_step",
    "list_checkpoints",
    "load_recipe",
    "lr_lambda",
    "parse_with_recipe",
    "render_model_card",
    "resolve_checkpoint",
    "warmup_cosine_factor",
]
