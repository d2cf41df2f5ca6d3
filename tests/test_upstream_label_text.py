"""The text each upstream label is embedded from: its cleaned form, on the real class lists of
harness/data/labels (underscores to spaces, LVIS's bracketed qualifier kept, Objects365's typo fixes), and the
pretrain job's label space built from it (LVIS stand-in in its real layout, as a rehearsal writes it)."""

from __future__ import annotations

import re
from collections import Counter

from harness.acquire.standins import write_upstream_standin
from harness.catalog.upstream_labels import UPSTREAM_ORDER, read_label_file, upstream_classes
from harness.workloads.scaledet.work import load_source


def test_lvis_texts_are_clean_unique_and_keep_their_qualifier():
    classes = upstream_classes("lvis")
    texts = {c.name: c.text for c in classes}
    assert texts["aerosol_can"] == "aerosol can" and texts["bow_(weapon)"] == "bow (weapon)"
    assert texts["arctic_(type_of_shoe)"] == "arctic (type of shoe)"
    assert not any("_" in t for t in texts.values()) and len(set(texts.values())) == len(classes) == 1203
    qualified = [n for n in texts if "(" in n]
    assert len(qualified) == 108 and all(re.search(r"\w \([\w ]+\)", texts[n]) for n in qualified)
    assert texts["monitor_(computer_equipment) computer_monitor"] == "monitor (computer equipment) computer monitor"
    # why the qualifier stays: without it these would embed from the same text as another class
    bare = Counter(re.sub(r" \(.*\)$", "", t) for t in texts.values())
    assert sorted(t for t, n in bare.items() if n > 1) == ["bow", "fish", "octopus", "pan", "salmon"]


def test_every_upstream_text_is_stripped_and_objects365_typos_are_fixed():
    for name in UPSTREAM_ORDER:
        assert all(c.text == c.text.strip() and c.text for c in upstream_classes(name)), name
    rows = read_label_file("objects365_v2.json")["classes"]
    fixed = {r["name"]: r["name_fixed"] for r in rows if r.get("name_fixed", r["name"]) != r["name"]}
    assert fixed  # the list has typo fixes, and they are what gets embedded
    texts = {c.name: c.text for c in upstream_classes("objects365")}
    assert all(texts[raw] == good.strip() for raw, good in fixed.items())


def test_a_pretrain_job_embeds_the_cleaned_texts(tmp_path, monkeypatch):
    write_upstream_standin("lvis", tmp_path / "lvis", images_per_split=2)
    monkeypatch.setenv("SCALEDET_LVIS_ROOT", str(tmp_path / "lvis"))
    monkeypatch.setenv("SCALEDET_COCO_ROOT", str(tmp_path / "coco"))
    source = load_source("upstream", "lvis", "glip", with_train=False)
    names = dict(zip(source.class_names, source.prompt_names))
    assert names["bow_(weapon)"] == "bow (weapon)" and names["aerosol_can"] == "aerosol can"  # labels keep their names
    assert source.prompt_names == tuple(c.text for c in upstream_classes("lvis"))
