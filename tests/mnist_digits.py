"""An MNIST-format data set made from scikit-learn's handwritten digits, written where torchvision looks for it
(``<root>/MNIST/raw/*-ubyte``), so that Ray's MNIST examples run without downloading anything.

The 8x8 digits (grey levels 0-16) are scaled up 3x to 24x24 and padded to MNIST's 28x28, as 0-255 bytes; 1437
images for training and 360 for testing (a fixed, stratified split).
"""

from __future__ import annotations

import os

import numpy as np


def _write_idx(path, array):
    magic = {3: 0x0803, 1: 0x0801}[array.ndim]
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def write_mnist_from_digits(root):
    """Write ``train-``/``t10k-`` image and label files under ``root/MNIST/raw``; returns that folder."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.kron(digits.images, np.ones((3, 3))) * (255.0 / 16.0)  # 8x8 -> 24x24
    images = np.pad(images, ((0, 0), (2, 2), (2, 2))).round().clip(0, 255).astype(np.uint8)  # -> 28x28
    x_train, x_test, y_train, y_test = train_test_split(images, digits.target, test_size=0.2, random_state=0,
                                                        stratify=digits.target)
    raw = os.path.join(root, "MNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    _write_idx(os.path.join(raw, "train-images-idx3-ubyte"), x_train)
    _write_idx(os.path.join(raw, "train-labels-idx1-ubyte"), y_train)
    _write_idx(os.path.join(raw, "t10k-images-idx3-ubyte"), x_test)
    _write_idx(os.path.join(raw, "t10k-labels-idx1-ubyte"), y_test)
    return raw


def torchvision_path():
    """Extra PYTHONPATH entries so that ``import torchvision`` works in a subprocess: none when the real one
    imports, else the tests' stand-in (tests/fixtures/torchvision_standin)."""
    import subprocess
    import sys

    works = subprocess.run([sys.executable, "-c", "import torchvision.datasets, torchvision.transforms"],
                           capture_output=True, timeout=120).returncode == 0
    return [] if works else [os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                                          "torchvision_standin")]
