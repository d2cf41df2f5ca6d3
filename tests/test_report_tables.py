"""Tables and averages from small stores written in the results format, with hand-computed values."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from report_fixtures import golden_report, table, write_cell

from harness.reporting import UnseenRule, render_report
from harness.reporting.cells import load_cells
from harness.reporting.model import Missing, Stat
from harness.reporting.published import load_published, printed_means
from harness.reporting.render import build_report, suite_datasets
from harness.reporting.tables import ReportInput
from scaledet.errors import DataError
from scaledet.evaluation import coco_eval

UNSEEN_Y = UnseenRule("only y of A", lambda upstream: {"A": frozenset({"y"})})


def _report(root: Path, unseen: UnseenRule | None = UNSEEN_Y, suite: str = "demo"):
    cells = load_cells(root, suite)
    return build_report(ReportInput(suite, suite_datasets(suite, cells), cells, None, unseen), "t")


def _two_seed_store(root: Path) -> None:
    """Suite demo: A (classes x, y) and B (class z), seeds 0 and 1."""
    write_cell(root, "A", 0.4, seed=0, per_class={"x": 0.2, "y": 0.6})
    write_cell(root, "B", 0.8, seed=0, per_class={"z": 0.8})
    write_cell(root, "A", 0.5, seed=1, per_class={"x": 0.3, "y": 0.7})
    write_cell(root, "B", 0.6, seed=1, per_class={"z": 0.6})


def test_published_means_recompute_from_per_dataset_numbers() -> None:
    inp = ReportInput("odinw13", suite_datasets("odinw13", None), load_published().cells[:0],
                      load_published(), None)  # fmt: skip
    report = build_report(inp, "published only")
    finetune = table(report, "per_dataset_finetune")
    assert finetune.cell("ScaleDet-B (published)", "mean").text() == "71.8"
    assert finetune.cell("GLIP-T (published)", "mean").text() == "64.9"
    assert finetune.cell("ScaleDet-B (published)", "mean").mean == pytest.approx(933.3 / 13)
    for mode in ("direct", "finetune"):
        for method, printed in printed_means(mode).items():
            cell = table(report, "summary").cell(f"{method} (published)", {"direct": "direct mAP",
                                                                            "finetune": "fine-tune mAP"}[mode])
            assert abs(cell.mean - printed) < 0.05, (mode, method)


def test_three_averages_hand_computed(tmp_path: Path) -> None:
    _two_seed_store(tmp_path)
    averages = table(_report(tmp_path), "averages_direct")
    label = "scaledet [LVIS]"
    # per seed: mAP 60 and 55; mAP_C (20+60+80)/3 and (30+70+60)/3; unseen (y of A) 60 and 70
    assert averages.cell(label, "mAP") == Stat(57.5, math.sqrt(12.5), 2)
    assert averages.cell(label, "mAP_C").mean == pytest.approx(160 / 3)
    assert averages.cell(label, "mAP_C").std == pytest.approx(0.0, abs=1e-9)
    assert averages.cell(label, "mAP_unseen").mean == pytest.approx(65.0)
    assert averages.cell(label, "mAP_unseen").text() == "65.0 ± 7.1"
    assert any("Unseen-class rule: only y of A." == note for note in averages.footnotes)


def test_per_dataset_table_mean_std_over_seeds_and_one_seed_without_pm(tmp_path: Path) -> None:
    _two_seed_store(tmp_path)
    write_cell(tmp_path, "A", 0.25, method="baseline", upstream="COCO")
    write_cell(tmp_path, "B", 0.35, method="baseline", upstream="COCO")
    direct = table(_report(tmp_path), "per_dataset_direct")
    assert [r.label for r in direct.rows] == ["scaledet [LVIS]", "baseline [COCO]"]
    assert direct.columns == ("A", "B", "mean")
    assert direct.cell("scaledet [LVIS]", "A").text() == "45.0 ± 7.1"
    assert direct.cell("baseline [COCO]", "A").text() == "25.0"
    assert direct.cell("baseline [COCO]", "mean") == Stat(30.0, 0.0, 1)


def test_missing_and_failed_cells_say_so(tmp_path: Path) -> None:
    write_cell(tmp_path, "A", 0.4, per_class={"x": 0.4})
    write_cell(tmp_path, "B", 0.6, method="baseline", upstream="COCO")
    write_cell(tmp_path, "B", None)
    report = _report(tmp_path)
    direct = table(report, "per_dataset_direct")
    assert direct.cell("scaledet [LVIS]", "B") == Missing("failed")
    assert direct.cell("baseline [COCO]", "A") == Missing("missing")
    assert direct.cell("scaledet [LVIS]", "mean").text() == "missing (1/2 datasets)"
    assert table(report, "summary").cell("scaledet [LVIS]", "fine-tune mAP").text() == "missing"
    assert "| missing " in "".join(r.label + "".join(f"| {c.text()} " for c in r.cells) for r in direct.rows)


def test_dataset_and_checkpoint_without_unseen_classes(tmp_path: Path) -> None:
    _two_seed_store(tmp_path)
    write_cell(tmp_path, "A", 0.5, upstream="LVIS+COCO", per_class={"x": 0.5})
    write_cell(tmp_path, "B", 0.5, upstream="LVIS+COCO", per_class={"z": 0.5})
    write_cell(tmp_path, "A", 0.5, upstream=None, method="baseline", per_class={"x": 0.5})
    write_cell(tmp_path, "B", 0.5, upstream=None, method="baseline", per_class={"z": 0.5})
    rule = UnseenRule("by upstream", lambda up: {"A": frozenset({"y"})} if up == ("LVIS",) else {})
    report = _report(tmp_path, rule)
    averages = table(report, "averages_direct")
    assert averages.cell("scaledet [LVIS+COCO]", "mAP_unseen") == Missing("n/a (no unseen classes)")
    assert averages.cell("baseline", "mAP_unseen") == Missing("n/a (upstream unknown)")
    assert averages.cell("scaledet [LVIS]", "mAP_unseen").mean == pytest.approx(65.0)
    from harness.reporting.render import markdown

    text = markdown(report)
    assert "- upstream LVIS: A: y. Datasets with no unseen classes: B." in text
    assert "- upstream LVIS+COCO: none. Datasets with no unseen classes: A, B." in text


def test_without_unseen_rule_the_report_says_so(tmp_path: Path) -> None:
    _two_seed_store(tmp_path)
    averages = table(_report(tmp_path, unseen=None), "averages_direct")
    assert averages.cell("scaledet [LVIS]", "mAP_unseen") == Missing("n/a (no unseen rule)")
    assert any("Unseen-class rule: none given" in note for note in averages.footnotes)


def test_no_per_class_ap_gives_na_for_class_averages(tmp_path: Path) -> None:
    write_cell(tmp_path, "A", 0.4)
    averages = table(_report(tmp_path), "averages_direct")
    assert averages.cell("scaledet [LVIS]", "mAP_C") == Missing("n/a (no per-class AP)")
    assert averages.cell("scaledet [LVIS]", "mAP_unseen") == Missing("n/a (no per-class AP)")


def test_ablation_pairs_hard_and_soft_on_the_same_upstream() -> None:
    report = golden_report()
    ablation = table(report, "ablation")
    assert [r.label for r in ablation.rows] == ["LVIS", "LVIS+COCO"]
    assert ablation.cell("LVIS", "L_hl mAP") == Missing("missing")
    assert ablation.cell("LVIS+COCO", "L_hl mAP").text() == "missing (11/13 datasets)"
    scaling = table(report, "scaling")
    assert ablation.cell("LVIS+COCO", "L_hl+L_sl mAP") == scaling.cell("2: LVIS+COCO", "mAP")
    assert ablation.cell("LVIS+COCO", "L_hl+L_sl mAP_C") == scaling.cell("2: LVIS+COCO", "mAP_C")


def test_fewshot_table_by_shots_over_seeds() -> None:
    fewshot = table(golden_report(), "fewshot")
    assert fewshot.columns == ("1-shot", "3-shot")
    assert all(isinstance(c, Stat) and c.n == 2 for c in fewshot.rows[0].cells)


def test_adapter_reads_store_fields(tmp_path: Path) -> None:
    write_cell(tmp_path, "A", 0.25, per_class={"x": 0.5}, upstream="LVIS+COCO", shots=3, mode="fewshot")
    cells = load_cells(tmp_path, "demo")
    row = cells.iloc[0]
    assert (row["ap"], row["per_class"], row["upstream"], row["shots"]) == (25.0, {"x": 50.0}, "LVIS+COCO", 3)
    assert (row["commit"], row["date"], len(row["config_hash"])) == ("abc1234", "2026-11-01T00:00:00+00:00", 12)
    assert load_cells(tmp_path, "odinw13").empty


def test_adapter_rejects_ap_outside_fractions(tmp_path: Path) -> None:
    write_cell(tmp_path, "A", 45.0)
    with pytest.raises(DataError, match=r"AP = 45.0, expected a fraction in \[0, 1\]"):
        load_cells(tmp_path, "demo")


def test_rows_distinguish_checkpoints_of_the_same_method(tmp_path: Path) -> None:
    write_cell(tmp_path, "A", 0.4, upstream=None, pretrained="scaledet-r50-lc")
    write_cell(tmp_path, "A", 0.6, upstream=None, pretrained="scaledet-r50-lcoo")
    write_cell(tmp_path, "A", 0.5, upstream="LVIS", pretrained="mine.pth")
    direct = table(_report(tmp_path), "per_dataset_direct")
    assert [r.label for r in direct.rows] == [
        "scaledet (scaledet-r50-lc)", "scaledet (scaledet-r50-lcoo)", "scaledet [LVIS] (mine.pth)"]
    assert [r.cells[0].text() for r in direct.rows] == ["40.0", "60.0", "50.0"]


def test_default_unseen_rule_is_the_catalogs_names_rule_per_dataset() -> None:
    from harness.catalog.unseen import unseen_classes
    from harness.reporting.render import default_unseen_rule

    rule = default_unseen_rule("demo", ("NorthAmericaMushrooms", "Raccoon"))
    upstream = ("Aquarium", "Packages", "Raccoon")
    expected = set(unseen_classes("demo", list(upstream), rule="names"))
    found = rule.classes(upstream)
    assert expected == {"CoW", "chanterelle"}  # the demo's unseen classes
    assert found == {"NorthAmericaMushrooms": frozenset(expected), "Raccoon": frozenset()}  # each dataset's own
    assert 'rule="names"' in rule.name


def _per_class_with_a_class_lacking_ground_truth() -> dict[str, float]:
    """Per-class AP as scaledet.evaluation.coco_eval gives it: x found, y has no ground truth (AP -1)."""
    gt = {"images": [{"id": 1, "width": 100, "height": 100}],
          "categories": [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600,
                           "iscrowd": 0}]}  # fmt: skip
    per_class = coco_eval(gt, [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "score": 0.9}])["per_class"]
    assert per_class == {"x": 1.0, "y": -1.0}
    return per_class


def test_class_without_ground_truth_is_left_out_of_class_means(tmp_path: Path) -> None:
    write_cell(tmp_path, "A", 0.5, per_class=_per_class_with_a_class_lacking_ground_truth())
    write_cell(tmp_path, "B", 0.6, per_class={"z": 0.6})
    report = _report(tmp_path)  # the unseen rule counts only A's class y, the one without ground truth
    for name in ("averages_direct", "scaling"):
        averages = table(report, name)
        row = averages.rows[0].label
        assert averages.cell(row, "mAP_C") == Stat(80.0, 0.0, 1)  # (100 + 60) / 2; y is left out
        assert averages.cell(row, "mAP_unseen").text() == "– (no ground truth)"
        assert any("no ground truth" in note and "A: y." in note for note in averages.footnotes)
    ablation = table(report, "ablation")
    assert ablation.cell("LVIS", "L_hl+L_sl mAP_C") == Stat(80.0, 0.0, 1)
    assert any("A: y." in note for note in ablation.footnotes)
    assert not any("no ground truth" in note for note in table(report, "averages_finetune").footnotes)


def test_report_with_a_class_without_ground_truth_renders(tmp_path: Path) -> None:
    write_cell(tmp_path / "store", "A", 0.5, per_class=_per_class_with_a_class_lacking_ground_truth())
    text = render_report(tmp_path / "store", "demo", tmp_path / "out", unseen=UNSEEN_Y).read_text()
    assert "| – (no ground truth) |" in text and "A: y." in text


def _pretrain_output(d: float, scored=("lvis", "coco", "objects365", "openimages")) -> dict:
    """A pretrain record's output as the scaledet workload writes it: AP on every upstream dataset scored."""
    ap = {"lvis": 0.20, "coco": 0.40, "objects365": 0.10, "openimages": 0.50}
    metrics = {f"AP/{n}": ap[n] + d for n in scored}
    metrics.update({"AP": sum(metrics.values()) / len(metrics), "AP_trained": 0.3 + d, "steps": 2.0})
    return {"metrics": metrics, "config": {"train": {"lr": 0.0002}}, "text_encoder": "minilm-l6-v2"}


def test_pretrain_cells_make_a_table_1_section(tmp_path: Path) -> None:
    from report_fixtures import record_of

    from harness.job import JobSpec
    from harness.reporting.render import render_report
    from harness.run.results import write_record

    def write(method: str, upstream: str, seed: int, output: dict | None) -> None:
        spec = JobSpec("upstream", upstream, "pretrain", method, seed, None, "glip")
        write_record(tmp_path, record_of(spec, "pre", output, finished_at="2026-11-01T00:00:00+00:00",
                                         git_sha="abc1234"))

    write("scaledet", "lvis+coco", 3, _pretrain_output(0.0))
    write("scaledet", "lvis+coco", 30, _pretrain_output(0.02))
    write("scaledet-hard", "lvis+coco", 3, _pretrain_output(-0.01, ("lvis", "coco", "objects365")))  # OID absent
    write("baseline", "coco", 3, None)  # failed
    text = render_report(tmp_path, "upstream", tmp_path / "out", "pre").read_text()
    assert "Upstream AP of the pretrained detectors (like Table 1)" in text
    lines = text.splitlines()
    header = next(line for line in lines if line.replace(" ", "").startswith("|method|lvis"))
    assert [c.strip() for c in header.split("|")[2:-1]] == ["lvis", "coco", "objects365", "openimages", "mean"]
    row = next(line for line in lines if line.startswith("| scaledet [lvis+coco] "))
    assert [c.strip() for c in row.split("|")[2:-1]] == ["21.0 ± 1.4", "41.0 ± 1.4", "11.0 ± 1.4", "51.0 ± 1.4",
                                                          "31.0 ± 1.4"]
    hard = next(line for line in lines if line.startswith("| scaledet-hard [lvis+coco] "))
    assert [c.strip() for c in hard.split("|")[2:-1]] == ["19.0", "39.0", "9.0", "missing",
                                                          "missing (3/4 datasets)"]
    failed = next(line for line in lines if line.startswith("| baseline [coco] "))
    assert failed.count("failed") == 5
    published = next(line for line in lines if line.startswith("| scaledet [lvis+coco+objects365+openimages] (pub"))
    assert [c.strip() for c in published.split("|")[2:-1]] == ["36.8", "47.1", "30.6", "69.4", "46.0"]
    # Table 8a: both methods trained on lvis+coco, the paper's rows beside
    assert "Ablation on upstream datasets: hard vs hard + soft label loss (like Table 8a)" in text
    section = text.split("(like Table 8a)")[1].split("\n## ")[0]
    rows = {cells[0]: cells[1:] for line in section.splitlines() if line.startswith("| ")
            for cells in [[c.strip() for c in line.split("|")[1:-1]]]}
    assert rows["L_hl [lvis+coco]"] == ["19.0", "39.0", "9.0", "missing", "missing (3/4 datasets)"]
    assert rows["L_hl+L_sl [lvis+coco]"] == ["21.0 ± 1.4", "41.0 ± 1.4", "11.0 ± 1.4", "51.0 ± 1.4", "31.0 ± 1.4"]
    assert rows["scaledet-hard [lvis+coco] (published)"] == ["33.1", "44.6", "15.7", "43.2", "34.2"]


def test_without_both_losses_on_one_upstream_there_is_no_table_8a(tmp_path: Path) -> None:
    from report_fixtures import record_of

    from harness.job import JobSpec
    from harness.reporting.render import render_report
    from harness.run.results import write_record

    spec = JobSpec("upstream", "lvis+coco", "pretrain", "scaledet", 3, None, "glip")
    write_record(tmp_path, record_of(spec, "pre", _pretrain_output(0.0), finished_at="2026-11-01T00:00:00+00:00",
                                     git_sha="abc1234"))
    text = render_report(tmp_path, "upstream", tmp_path / "out", "pre").read_text()
    assert "(like Table 1)" in text and "(like Table 8a)" not in text

def test_detic_comparisons_take_our_models_by_backbone_beside_the_papers_rows(tmp_path: Path) -> None:
    """Tables 4 (R50: LVIS, COCO, their mean) and A (Swin-B: all four): our ScaleDet models of that backbone
    trained on at least LVIS+COCO, labelled with their text encoder; Table 1 keeps one row per backbone."""
    from report_fixtures import record_of

    from harness.job import JobSpec
    from harness.reporting.render import render_report
    from harness.run.results import write_record

    def write(method: str, upstream: str, backbone: str, output: dict, encoder: str) -> None:
        spec = JobSpec("upstream", upstream, "pretrain", method, 3, None, "glip", (("model.backbone", backbone),))
        write_record(tmp_path, record_of(spec, "pre", {**output, "text_encoder": encoder},
                                         finished_at="2026-11-01T00:00:00+00:00", git_sha="abc1234"))

    write("scaledet", "lvis+coco", "r50", _pretrain_output(0.0), "clip")
    write("scaledet", "lvis+coco+objects365+openimages", "r50", _pretrain_output(0.1), "clip")
    write("scaledet", "lvis+coco+objects365+openimages", "swin-b", _pretrain_output(0.2), "openclip")
    write("baseline", "coco", "r50", _pretrain_output(0.0, ("coco",)), "clip")  # not a ScaleDet model: not in 4/A
    text = render_report(tmp_path, "upstream", tmp_path / "out", "pre").read_text()

    def section(title: str) -> dict[str, list[str]]:
        body = text.split(title)[1].split("\n## ")[0]
        return {cells[0]: cells[1:] for line in body.splitlines() if line.startswith("| ")
                for cells in [[c.strip() for c in line.split("|")[1:-1]]]}

    table1 = section("(like Table 1)")
    assert table1["scaledet [lvis+coco+objects365+openimages] (r50, clip)"][:2] == ["30.0", "50.0"]
    assert table1["scaledet [lvis+coco+objects365+openimages] (swin-b, openclip)"][:2] == ["40.0", "60.0"]
    table4 = section("(like Table 4)")
    assert table4["method"] == ["lvis", "coco", "mean"]
    assert table4["scaledet [lvis+coco] (r50, clip)"] == ["20.0", "40.0", "30.0"]
    assert table4["scaledet [lvis+coco+objects365+openimages] (r50, clip)"] == ["30.0", "50.0", "40.0"]
    assert table4["Detic [lvis+coco] (published)"] == ["33.0", "43.9", "38.4"]
    assert not any(label.startswith(("baseline", "scaledet [lvis+coco+objects365+openimages] (swin-b"))
                   for label in table4)
    table_a = section("(like Table A)")
    assert table_a["method"] == ["lvis", "coco", "objects365", "openimages", "mean"]
    assert table_a["scaledet [lvis+coco+objects365+openimages] (swin-b, openclip)"] == [
        "40.0", "60.0", "30.0", "70.0", "50.0"]
    assert table_a["Detic [lvis+coco+in21k] (published)"] == ["44.3", "50.1", "21.6", "54.6", "42.7"]
    assert "copied from ScaleDet (CVPR 2023) Table A" in text.split("(like Table A)")[1]


def _planned(config: dict) -> tuple[tuple[str, str], ...]:
    """The overrides a sweep file plans for a record's ``config`` (its start, its recipe)."""
    if "work" in config:
        return (("pretrain_job", "abc"),)
    return tuple((f"{section}.{key}", value) for section, values in config.items() for key, value in values.items())


def test_tables_2_and_3_and_the_star_rows_read_the_models_by_backbone_encoder_recipe_and_start(tmp_path: Path) -> None:
    """Table 2: ScaleDet on all four per backbone and text encoder, the '*' row built from the runs trained further
    on one dataset each (each column their own dataset's AP); Table 3: the runs of UniDet's recipe, 'single' from the
    baselines on each dataset alone, 'multiple' from ScaleDet on the three; neither leaks into Tables 4, A or 8a."""
    from report_fixtures import record_of

    from harness.job import JobSpec
    from harness.reporting.render import render_report
    from harness.run.results import write_record

    four = "lvis+coco+objects365+openimages"
    sgd = {"train": {"optimizer": "sgd"}, "data": {"augmentation": "standard"}}

    def write(method: str, upstream: str, backbone: str, output: dict, encoder: str, config: dict | None = None,
              seed: int = 3) -> None:
        spec = JobSpec("upstream", upstream, "pretrain", method, seed, None, "glip",
                       (("model.backbone", backbone), ("text_encoder", encoder), *_planned(config or {})))
        output = {**output, "text_encoder": encoder, "config": {**output["config"], **(config or {})}}
        write_record(tmp_path, record_of(spec, "pre", output, finished_at="2026-11-01T00:00:00+00:00",
                                         git_sha="abc1234"))

    write("scaledet", four, "r50", _pretrain_output(0.0), "clip")
    write("scaledet", four, "swin-b", _pretrain_output(0.2), "clip")
    write("scaledet", four, "swin-b", _pretrain_output(0.22), "openclip")
    further = {"work": {"start_checkpoint": "runs/abc/checkpoints/last.pt"}}
    for name, d in (("lvis", 0.23), ("coco", 0.24), ("objects365", 0.25), ("openimages", 0.21)):
        write("scaledet", name, "swin-b", _pretrain_output(d), "openclip", further)  # scored on all four
    for name, d in (("coco", 0.0), ("objects365", 0.01), ("openimages", 0.02)):
        write("baseline", name, "r50", _pretrain_output(d, ("coco", "objects365", "openimages")), "clip", sgd)
    write("scaledet", "coco+objects365+openimages", "r50", _pretrain_output(0.05), "clip", sgd)
    text = render_report(tmp_path, "upstream", tmp_path / "out", "pre").read_text()

    def section(title: str) -> dict[str, list[str]]:
        body = text.split(title)[1].split("\n## ")[0]
        return {cells[0]: cells[1:] for line in body.splitlines() if line.startswith("| ")
                for cells in [[c.strip() for c in line.split("|")[1:-1]]]}

    table2 = section("(like Table 2)")
    assert table2["ScaleDet-R (clip)"] == ["20.0", "40.0", "10.0", "50.0", "30.0"]
    assert table2["ScaleDet-B (clip)"] == ["40.0", "60.0", "30.0", "70.0", "50.0"]
    assert table2["ScaleDet-B (openclip)"] == ["42.0", "62.0", "32.0", "72.0", "52.0"]
    # lvis 20+23, coco 40+24, objects365 10+25, openimages 50+21: each from the run on that dataset alone
    assert table2["ScaleDet-B* (openclip)"] == ["43.0", "64.0", "35.0", "71.0", "53.2"]
    assert table2["ScaleDet-B* (OpenCLIP) [each alone after L+C+O365+OID] (published)"] == [
        "50.6", "58.8", "46.8", "75.9", "58.0"]
    assert len([label for label in table2 if label.startswith("ScaleDet-")]) == 4 + 6  # ours, the paper's
    table3 = section("(like Table 3)")
    assert table3["method"] == ["coco", "objects365", "openimages", "mean"]
    assert table3["single: baseline on each dataset alone (r50, clip)"] == ["40.0", "11.0", "52.0", "34.3"]
    assert table3["multiple: scaledet [coco+objects365+openimages] (r50, clip)"] == ["45.0", "15.0", "55.0", "38.3"]
    assert table3["ScaleDet [multiple] (published)"] == ["45.5", "27.9", "69.6", "47.7"]
    assert table3["UniDet [single] (published)"] == ["42.5", "24.9", "65.7", "44.3"]
    table_a = section("(like Table A)")  # the Swin-B models on at least L+C, and the '*' row
    assert table_a["scaledet [lvis+coco+objects365+openimages] (swin-b, openclip)"][-1] == "52.0"
    assert table_a["scaledet* (swin-b, openclip)"] == ["43.0", "64.0", "35.0", "71.0", "53.2"]
    assert "further fine-tune the model on each dataset" in text.split("(like Table A)")[1].split("\n## ")[0]
    table1 = section("(like Table 1)")  # every model, its recipe and start told apart
    assert table1["scaledet* [lvis] (swin-b, openclip)"][0] == "43.0"
    assert table1["baseline [coco] (r50, clip, sgd, standard aug)"][1] == "40.0"
    assert not any("sgd" in label or "*" in label for label in section("(like Table 4)"))
