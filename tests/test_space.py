"""The Gradio Space: the page's logic, and the app launched on 127.0.0.1 and called with gradio_client."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import free_port, random_rgb

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from mirage_hf import space  # noqa: E402

SPACE_DIR = Path(__file__).resolve().parents[1] / "spaces"


def save_photo(path: Path, height: int, width: int, seed: int = 0) -> Path:
    Image.fromarray(random_rgb(height, width, seed)).save(path)
    return path


@pytest.fixture(scope="module")
def model_dir(module_tiny_model_dir):
    return str(module_tiny_model_dir)


@pytest.fixture(scope="module")
def app_module(model_dir):
    """spaces/app.py imported as the Space imports it, with the tiny model as its default."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MIRAGE_SPACE_MODEL", model_dir)
        patch.syspath_prepend(str(SPACE_DIR))
        sys.modules.pop("app", None)
        space._cached_model.cache_clear()
        import app

        yield app
        sys.modules.pop("app", None)


@pytest.fixture(scope="module")
def client(app_module):
    from gradio_client import Client

    app_module.demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield Client(app_module.demo.local_url, verbose=False)
    finally:
        app_module.demo.close()


def test_app_import_builds_the_page_without_loading_a_model(app_module, model_dir):
    assert isinstance(app_module.demo, gr.Blocks)
    assert space._cached_model.cache_info().currsize == 0
    assert space.default_model() == model_dir
    assert not Path(space.__file__).with_suffix(".pyi").exists()  # Gradio writes stubs for component subclasses


def test_restore_through_the_api(client, tmp_path):
    from gradio_client import handle_file

    photo = save_photo(tmp_path / "street.png", 40, 56)
    (before, after), download, summary = client.predict(handle_file(str(photo)), "", api_name="/restore")
    for path in (before, after, download):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (56, 40)
    assert Path(download).name == "street_restored.png"
    assert summary.startswith("Restored 56×40")


def test_try_it_through_the_api(client, tmp_path):
    from gradio_client import handle_file

    example = save_photo(tmp_path / "clean.png", 48, 64)
    (degraded, restored), table = client.predict(
        handle_file(str(example)), 25, 0.5, 0.5, 5, 0.3, 7, "", api_name="/try_it"
    )
    with Image.open(example) as clean, Image.open(degraded) as first, Image.open(restored) as second:
        assert first.size == second.size == clean.size
        assert first.format == second.format == "PNG"
    assert "| degraded |" in table and "| restored |" in table and "PSNR" in table


@pytest.mark.parametrize(
    "content, model, message",
    [
        (b"this is not an image", "", "not an image that can be read"),
        (None, "no-such-user/no-such-model", "Cannot load model"),
    ],
)
def test_bad_input_gives_one_clear_message(client, tmp_path, content, model, message):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    photo = tmp_path / "upload.png"
    if content is None:
        save_photo(photo, 16, 16)
    else:
        photo.write_bytes(content)
    with pytest.raises(AppError) as error:
        client.predict(handle_file(str(photo)), model, api_name="/restore")
    assert message in str(error.value) and "Traceback" not in str(error.value)


def test_photo_above_the_size_limit_is_refused(client, tmp_path, monkeypatch):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    monkeypatch.setattr(space, "MAX_PIXELS", 30 * 30)
    photo = save_photo(tmp_path / "big.png", 40, 40)
    with pytest.raises(AppError, match=r"40×40 .*up to 0\.0 MP"):
        client.predict(handle_file(str(photo)), "", api_name="/restore")


def test_large_photo_is_tiled_with_progress(model_dir, monkeypatch):
    monkeypatch.setattr(space, "TILE_THRESHOLD", 48)
    monkeypatch.setattr(space, "TILE_SIZE", 48)
    monkeypatch.setattr(space, "TILE_OVERLAP", 8)
    calls = []
    photo = Image.fromarray(random_rgb(60, 100))
    restored, tiles = space.restore_photo_image(photo, model_dir, progress=lambda value, **kw: calls.append(value))
    assert restored.size == (100, 60)
    assert tiles == 2 * 3 and calls[-1] == (6, 6)


def test_model_is_loaded_once_per_id(model_dir):
    first = space.get_model(model_dir)
    assert space.get_model(model_dir + " ") is first  # the selector's text is stripped
    assert space._cached_model.cache_info().hits >= 1


def test_unexpected_errors_become_one_sentence():
    @space.user_errors
    def broken():
        raise RuntimeError("internal detail\nwith a second line")

    with pytest.raises(gr.Error) as error:
        broken()
    assert error.value.message == "Something went wrong (RuntimeError). Please try another photo."


def test_error_text_is_escaped():
    assert space.fail("model '<b>x</b>'").message == "model '&lt;b&gt;x&lt;/b&gt;'"


def test_degrade_photo_is_reproducible():
    clean = Image.fromarray(random_rgb(32, 32))
    assert space.degrade_photo(clean, 0, 0, 0, 1, 0, seed=0) is clean
    first = np.asarray(space.degrade_photo(clean, 25, 0.5, 1.0, 5, 0.5, seed=3))
    second = np.asarray(space.degrade_photo(clean, 25, 0.5, 1.0, 5, 0.5, seed=3))
    assert first.shape == (32, 32, 3) and np.array_equal(first, second)
    assert not np.array_equal(first, np.asarray(clean))


def test_read_photo_flattens_transparency(tmp_path):
    path = tmp_path / "logo.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)
    image = space.read_photo(str(path))
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)


def test_space_folder_is_a_valid_space():
    from huggingface_hub import SpaceCard

    card = SpaceCard.load(SPACE_DIR / "README.md").data
    assert card.sdk == "gradio" and card.sdk_version.split(".")[0] == gr.__version__.split(".")[0]  # same major
    assert (SPACE_DIR / card.app_file).is_file() and card.license == "mit"
    assert card.title and card.emoji and card.colorFrom and card.colorTo and isinstance(card.models, list)
    assert 0 < len(card.short_description) <= 60
    for kind in ("clean", "degraded"):
        assert len(list((SPACE_DIR / "examples" / kind).glob("*.jpg"))) >= 3
    assert sum(path.stat().st_size for path in (SPACE_DIR / "examples").rglob("*")) < 300_000


def test_space_requirements_cover_the_package_dependencies():
    import re
    import tomllib

    pyproject = tomllib.loads((SPACE_DIR.parent / "pyproject.toml").read_text())
    required = {re.split(r"[<>=!~ \[;]", dependency)[0].lower() for dependency in pyproject["project"]["dependencies"]}
    lines = (SPACE_DIR / "requirements.txt").read_text().splitlines()
    listed = {re.split(r"[<>=!~ \[;]", line)[0].lower() for line in lines if line and not line.startswith(("#", "-"))}
    assert required <= listed and "gradio" not in listed  # gradio comes from sdk_version


def test_a_model_of_another_kind_is_refused_before_loading(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(gr.Error, match="is not a MIRAGE model"):
        space.get_model(str(tmp_path))


def test_the_bundled_default_model_loads_or_is_reported_missing():
    from mirage_hf.inference import DEFAULT_MODEL_NAME, bundled_model_names

    if DEFAULT_MODEL_NAME in bundled_model_names():
        model, processor = space.get_model(DEFAULT_MODEL_NAME)
        assert model.config.model_type == "mirage"
    else:
        with pytest.raises(gr.Error, match="bundled default weights .* are missing"):
            space.get_model(DEFAULT_MODEL_NAME)
