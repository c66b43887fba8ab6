"""Host-side ImageNet throughput: decode + the reference train / test transforms, images per second.

Writes ``--images`` photo-sized JPEGs (``--width`` x ``--height``, smooth colour fields plus mild
noise, quality 90: ~ImageNet's average file) into a temporary class-folder tree, then times
``LazyImages[index]`` batches (what the evaluation loop's prefetch thread runs) for the train
transform (RandomResizedCrop 224 + flip + ColorJitter) and the test transform (resize 256, center
crop 224).

  python experiments/imagenet_decode.py --images=512 --batch=128
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jaxnas import data as data_lib  # noqa: E402


def write_tree(root: str, n: int, width: int, height: int) -> None:
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
  for i in range(n):
    folder = os.path.join(root, "train", f"n{i % 4:08d}")
    os.makedirs(folder, exist_ok=True)
    os.makedirs(os.path.join(root, "val", f"n{i % 4:08d}"), exist_ok=True)
    a, b, c = rng.uniform(0, 255, (3, 3))
    pixels = np.stack([a[k] * xx + b[k] * yy + c[k] for k in range(3)], -1) % 256
    pixels = np.clip(pixels + rng.normal(0, 8, pixels.shape), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(os.path.join(folder, f"img_{i}.JPEG"), quality=90)
    if i < n // 4:
      Image.fromarray(pixels).save(os.path.join(root, "val", f"n{i % 4:08d}", f"img_{i}.JPEG"),
                                   quality=90)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--images", type=int, default=512)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--width", type=int, default=500)
  parser.add_argument("--height", type=int, default=375)
  parser.add_argument("--workers", type=int, default=0, help="decoding threads (0: min(8, cpus))")
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as root:
    write_tree(root, args.images, args.width, args.height)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
    files = sum(len(fs) for _, _, fs in os.walk(root))
    ds = data_lib.get_dataset("imagenet", data_dir=root, workers=args.workers)
    print(f"{files} JPEGs, mean {size / files / 1024:.0f} KiB, {args.width}x{args.height}; "
          f"{ds.train_images.workers} decoding threads, {os.cpu_count()} CPUs")
    for name, images in (("train", ds.train_images), ("test", ds.test_images)):
      batch = min(args.batch, len(images))
      images[np.arange(batch)]   # warm-up (Pillow plugins, page cache)
      starts = range(0, len(images) - batch + 1, batch)
      t0 = time.perf_counter()
      for s in starts:
        images[np.arange(s, s + batch)]
      seconds = time.perf_counter() - t0
      print(f"{name}: {len(starts) * batch / seconds:.0f} images/s "
            f"({len(starts)} batches of {batch})")


if __name__ == "__main__":
  main()
