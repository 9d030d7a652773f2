"""`mirage eval` and `mirage_hf.evaluation`: per-set scores, the paper's tables, the crop rule, JSON output."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from fixtures_data import make_cdd11_layout, make_test_layout

from mirage_hf.cli import main
from mirage_hf.data import build_dataset_dict, save_dataset_dict
from mirage_hf.evaluation import evaluate_model, format_tables, paper_tables, set_name
from mirage_hf.metrics import psnr


class Identity(torch.nn.Module):
    """Returns its input: the scores are then those of the degraded images themselves."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, pixel_values):
        return SimpleNamespace(reconstruction=pixel_values)


@pytest.fixture(scope="module")
def test_sets(tmp_path_factory):
    base = tmp_path_factory.mktemp("eval")
    return {
        "test": build_dataset_dict("test", make_test_layout(base / "test"), cache_dir=base / "cache"),
        "cdd11": build_dataset_dict("cdd11", make_cdd11_layout(base / "cdd11"), cache_dir=base / "cache"),
        "base": base,
    }


def _psnr_of(row, crop: bool) -> float:
    from mirage_hf.data import center_crop_multiple

    degraded, clean = (torch.from_numpy(np.asarray(row[k], dtype=np.float32) / 255).permute(2, 0, 1)[None] for k in ("input", "target"))
    if crop:
        degraded, clean = center_crop_multiple(degraded), center_crop_multiple(clean)
    return psnr(degraded, clean).item()


def test_sets_tables_and_crop_rule(test_sets):
    results = evaluate_model(Identity(), test_sets["test"])
    assert list(results) == ["BSD68 σ15", "BSD68 σ25", "BSD68 σ50", "Rain100L", "SOTS", "GoPro", "LOL"]
    assert results["BSD68 σ25"]["count"] == 2 and results["SOTS"]["count"] == 1
    # benchmark rows are centre-cropped to a multiple of 16 (24x20 -> 16x16), CDD-11 rows are not
    assert results["GoPro"]["psnr"] == pytest.approx(_psnr_of(test_sets["test"]["gopro"][0], crop=True))
    cdd11 = evaluate_model(Identity(), test_sets["cdd11"]["test"])
    row = test_sets["cdd11"]["test"].filter(lambda r: r["degradation"] == "low")[0]
    assert cdd11["CDD-11 low"]["psnr"] == pytest.approx(np.mean([_psnr_of(r, crop=False) for r in test_sets["cdd11"]["test"] if r["degradation"] == "low"]))
    assert _psnr_of(row, crop=False) != pytest.approx(_psnr_of(row, crop=True))

    tables = paper_tables(results)
    assert list(tables) == ["3-degradation", "5-degradation"]
    assert list(tables["5-degradation"]["columns"]) == ["SOTS", "Rain100L", "BSD68 σ25", "GoPro", "LOL"]
    five = [results[n]["psnr"] for n in ("SOTS", "Rain100L", "BSD68 σ25", "GoPro", "LOL")]
    assert tables["5-degradation"]["average"]["psnr"] == pytest.approx(sum(five) / 5)
    assert "CDD-11" in paper_tables(cdd11)
    text = format_tables(tables)
    assert "3-degradation (PSNR/SSIM)" in text and "Average" in text
    assert set_name("Urban100", "noise_50") == "Urban100 σ50"


def test_limit(test_sets):
    results = evaluate_model(Identity(), test_sets["test"], limit=1)
    assert {r["count"] for r in results.values()} == {1}


def test_mirage_eval_end_to_end(test_sets, tiny_model_dir, tmp_path, capsys):
    model_dir = tiny_model_dir
    data_dir = save_dataset_dict(test_sets["test"], tmp_path / "data")
    report_path = tmp_path / "report.json"
    code = main(["eval", "--model", str(model_dir), "--data", str(data_dir), "--split", "sots", "rain100l", "--json", str(report_path), "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "other (PSNR/SSIM)" in printed and "SOTS" in printed
    report = json.loads(report_path.read_text())
    assert report["protocol"] == "paper" and set(report["sets"]) == {"SOTS", "Rain100L"}
    entry = report["model_index"][0]
    assert {m["type"] for m in entry["metrics"]} == {"psnr", "ssim"} and entry["dataset"]["name"] in report["sets"]
    assert main(["eval", "--model", str(model_dir), "--data", str(data_dir), "--split", "nope"]) == 1
    assert "no split nope" in capsys.readouterr().err
    assert main(["eval", "--model", str(model_dir), "--data", str(tmp_path / "missing")]) == 1


def test_model_index_keeps_each_noise_level_apart():
    from huggingface_hub import ModelCard, ModelCardData

    from mirage_hf.evaluation import eval_results, model_index_results

    results = {f"BSD68 σ{s}": {"psnr": 30.0 + s, "ssim": 0.9} for s in (15, 25, 50)}
    entries = model_index_results(results)
    assert [entry["dataset"]["type"] for entry in entries] == ["bsd68-15", "bsd68-25", "bsd68-50"]
    card = ModelCard.from_template(ModelCardData(model_name="m", eval_results=eval_results(results)))
    reread = ModelCard(str(card)).data.eval_results  # the Hub's own parser groups by dataset type
    assert sorted((r.dataset_name, r.metric_type) for r in reread) == sorted(
        (name, metric) for name in results for metric in ("psnr", "ssim")
    )
