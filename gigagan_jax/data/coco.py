"""Reading MS-COCO captions as they are downloaded: an image folder (`train2017/`, `val2014/`, ...)
and its `captions_*.json` (the 2014 and 2017 releases share the format), without TensorFlow.

Every caption is kept (COCO has about five per image), each as one (image, caption) pair, listed
image by image so preparation decodes each image once. Images the annotations name but the folder
lacks are skipped and counted, as a caption folder's missing files are.
"""

from __future__ import annotations

import json
import os

from gigagan_jax.data.caption_folder import Listing, check_inside


def _load(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise FileNotFoundError(f"cannot read COCO annotations {path}: {e.strerror}") from None
    except ValueError as e:
        raise ValueError(f"{path}: not a JSON file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(
            data.get("annotations"), list):
        raise ValueError(f'{path}: expected COCO captions JSON ({{"images": [...], "annotations": [...]}}, as '
                         "captions_train2017.json)")
    return data


def scan(images: str, annotations: str) -> Listing:
    """(image path relative to `images`, caption) pairs in file-name order, captions in annotation
    order; ValueError names the first malformed record."""
    root = os.path.abspath(os.path.expanduser(images))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"COCO image folder not found: {root}")
    data = _load(annotations)
    real_root = os.path.realpath(root)
    files = {}
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not isinstance(image.get("file_name"), str) or "id" not in image:
            raise ValueError(f"{annotations}: images[{i}] needs an 'id' and a 'file_name'")
        check_inside(root, real_root, image["file_name"], f"{annotations}: images[{i}]")
        files[image["id"]] = image["file_name"]
    captions: dict[str, list[str]] = {}
    for i, annotation in enumerate(data["annotations"]):
        if not isinstance(annotation, dict) or not isinstance(annotation.get("caption"), str):
            raise ValueError(f"{annotations}: annotations[{i}] needs a string 'caption'")
        if annotation.get("image_id") not in files:
            raise ValueError(f"{annotations}: annotations[{i}] names image_id {annotation.get('image_id')!r}, "
                             "which 'images' does not list")
        captions.setdefault(files[annotation["image_id"]], []).append(" ".join(annotation["caption"].split()))
    entries, skipped = [], []
    for rel in sorted(captions):
        if os.path.isfile(os.path.join(root, rel)):
            entries += [(rel, caption) for caption in captions[rel]]
        else:
            skipped.append((rel, "missing file"))
    if not entries:
        raise ValueError(f"no captioned images of {annotations} in {root} ({len(skipped)} missing): is it the "
                         "image folder of the same split?")
    return Listing(root, entries, skipped)
