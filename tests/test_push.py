"""`mirage push` / `mirage push-space`: the exact upload folders (--dry-run), checks, and the upload calls (faked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mirage_hf.cli import main

SPACE_DIR = Path(__file__).resolve().parents[1] / "spaces"
MODEL_FILES = {"README.md", "config.json", "model.safetensors", "preprocessor_config.json"}


def files_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def test_push_dry_run_writes_the_model_upload(tiny_model_dir, tmp_path, capsys):
    from mirage_hf.inference import load_model

    out = tmp_path / "upload"
    assert main(["push", str(tiny_model_dir), "me/mirage-tiny", "--dry-run", str(out)]) == 0
    assert files_under(out) == MODEL_FILES
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "license: mit" in card and 'load_model("me/mirage-tiny")' in card
    load_model(str(out))  # the upload is itself a loadable model folder
    assert "nothing uploaded to me/mirage-tiny" in capsys.readouterr().out


def test_push_keeps_the_folders_own_model_card_and_adds_a_processor_config(tiny_model_dir, tmp_path):
    (tiny_model_dir / "README.md").write_text("---\nlicense: mit\n---\n# my card\n")
    (tiny_model_dir / "preprocessor_config.json").unlink()
    (tiny_model_dir / "training_log.txt").write_text("not uploaded")
    out = tmp_path / "upload"
    assert main(["push", str(tiny_model_dir), "me/x", "--dry-run", str(out)]) == 0
    assert files_under(out) == MODEL_FILES
    assert (out / "README.md").read_text().endswith("# my card\n")


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("missing_folder", "no such model folder"),
        ("no_weights", "model.safetensors is missing"),
        ("corrupt_weights", "the model cannot be loaded"),
        ("other_model_type", "model_type 'bert'"),
    ],
)
def test_push_refuses_a_bad_model_folder_with_one_line(tiny_model_dir, tmp_path, capsys, breakage, message):
    model_dir = tiny_model_dir
    if breakage == "missing_folder":
        model_dir = tmp_path / "nothing-here"
    elif breakage == "no_weights":
        (model_dir / "model.safetensors").unlink()
    elif breakage == "corrupt_weights":
        (model_dir / "model.safetensors").write_bytes(b"\x00" * 64)
    else:
        (model_dir / "config.json").write_text('{"model_type": "bert"}')
    out = tmp_path / "upload"
    assert main(["push", str(model_dir), "me/x", "--dry-run", str(out)]) == 1
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert len(error_lines) == 1 and error_lines[0].startswith("mirage push: error:") and message in error_lines[0]
    assert not out.exists()


def test_dry_run_refuses_a_non_empty_folder(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "upload"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["push", str(tiny_model_dir), "me/x", "--dry-run", str(out)]) == 1
    assert "not empty" in capsys.readouterr().err and files_under(out) == {"keep.txt"}


def test_push_space_dry_run_writes_a_self_contained_space(tmp_path, capsys):
    out = tmp_path / "space"
    assert main(["push-space", "me/mirage-demo", "--dry-run", str(out)]) == 0
    files = files_under(out)
    assert {name for name in files if not name.startswith("mirage_hf/")} == {
        "app.py", "README.md", "requirements.txt", "make_examples.py",
        *(str(path.relative_to(SPACE_DIR)) for path in (SPACE_DIR / "examples").rglob("*.jpg")),
    }
    assert {"mirage_hf/__init__.py", "mirage_hf/space.py", "mirage_hf/inference.py"} <= files
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in files)
    assert (out / "app.py").read_bytes() == (SPACE_DIR / "app.py").read_bytes()
    # The Space imports the copy next to app.py, not an installed mirage_hf.
    origin = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; print(u.find_spec('mirage_hf').origin)"],
        cwd=out, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert Path(origin).resolve() == (out / "mirage_hf" / "__init__.py").resolve()
    assert "nothing uploaded to me/mirage-demo" in capsys.readouterr().out


def test_push_space_with_a_hub_model_lists_it_in_the_card(tmp_path, capsys):
    from huggingface_hub import SpaceCard

    out = tmp_path / "space"
    assert main(["push-space", "me/mirage-demo", "--model", "me/mirage-small", "--dry-run", str(out)]) == 0
    assert SpaceCard.load(out / "README.md").data.models == ["me/mirage-small"]
    assert "MIRAGE_SPACE_MODEL=me/mirage-small" in capsys.readouterr().out


def test_push_space_with_a_model_folder_ships_it_as_model(tiny_model_dir, tmp_path):
    out = tmp_path / "space"
    assert main(["push-space", "me/mirage-demo", "--model", str(tiny_model_dir), "--dry-run", str(out)]) == 0
    assert {name[len("model/"):] for name in files_under(out) if name.startswith("model/")} == MODEL_FILES


class FakeHfApi:
    """Records what would go to the Hub: no network."""

    calls: list = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}"

    def add_space_variable(self, repo_id, key, value):
        self.calls.append(("add_space_variable", repo_id, {key: value}))

    def upload_folder(self, folder_path, repo_id, **kwargs):
        self.calls.append(("upload_folder", repo_id, files_under(Path(folder_path)), kwargs))


def test_push_creates_the_repo_and_uploads_the_folder(tiny_model_dir, monkeypatch, capsys):
    import huggingface_hub

    FakeHfApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    assert main(["push", str(tiny_model_dir), "me/x", "--private", "--commit-message", "v1"]) == 0
    (_, repo, create_args), (_, _, uploaded, upload_args) = FakeHfApi.calls
    assert repo == "me/x" and create_args == {"repo_type": "model", "private": True, "exist_ok": True}
    assert uploaded == MODEL_FILES and upload_args == {"repo_type": "model", "commit_message": "v1"}
    assert "uploaded 4 files to https://huggingface.co/me/x" in capsys.readouterr().out


def test_push_space_sets_the_sdk_and_the_model_variable(monkeypatch):
    import huggingface_hub

    FakeHfApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    assert main(["push-space", "me/demo", "--model", "me/mirage-small"]) == 0
    create, variable, upload = FakeHfApi.calls
    assert create[2]["space_sdk"] == "gradio" and create[2]["repo_type"] == "space"
    assert variable == ("add_space_variable", "me/demo", {"MIRAGE_SPACE_MODEL": "me/mirage-small"})
    assert "app.py" in upload[2] and upload[3]["repo_type"] == "space"


def test_a_failed_upload_is_one_line(tiny_model_dir, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # huggingface_hub refuses every request: nothing leaves the machine
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    assert main(["push", str(tiny_model_dir), "me/x"]) == 1
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert len(error_lines) == 1 and error_lines[0].startswith("mirage push: error: upload to me/x failed:")
