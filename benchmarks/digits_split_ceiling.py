"""How hard is digits-dvs's test split? An RBF-SVM on the clean 8x8 digits, same split as the store.

digits-dvs keeps the source's order (``<class>/<class>_<i>.aedat``, i = the image's rank within its
class in scikit-learn's ``load_digits``), and its split is the CIFAR10-DVS protocol: per class the
first 90 % train, the last 10 % test; the validation split is the last 10 % of each class's training
part. Images late in each class come from other writers, so this split is harder than a random one.
This script fits scikit-learn's SVC (RBF kernel, C=1, gamma=0.001, the digits example's setting) on
the clean static images of exactly the digits-dvs training split, and on a random split of the same
sizes, and prints validation and test accuracy: a reference point for what the simulated-event
teacher could reach (it sees the events, not the clean pixels).

Run: ``python benchmarks/digits_split_ceiling.py``
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.svm import SVC

from ckdsnn_events.data.event_folders import split_indices
from ckdsnn_events.data.loaders import train_val_split


def accuracy(model: SVC, x: np.ndarray, y: np.ndarray) -> float:
    return float((model.predict(x) == y).mean())


def main() -> None:
    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    train_all, test = split_indices(y, 0.9)
    fit_part, val_part = train_val_split(y[train_all], 0.1)
    train, val = train_all[fit_part], train_all[val_part]
    order = np.random.default_rng(0).permutation(len(y))
    shuffled = {"train": order[:len(train)], "val": order[len(train):len(train) + len(val)],
                "test": order[len(train) + len(val):]}
    print(f"sizes: train {len(train)}, validation {len(val)}, test {len(test)}")
    for name, (tr, va, te) in {"digits-dvs split (ordered)": (train, val, test),
                               "random split, same sizes": (shuffled["train"], shuffled["val"], shuffled["test"])}.items():
        model = SVC(C=1.0, gamma=0.001 * 256).fit(x[tr], y[tr])  # gamma 0.001 on 0..16 pixels = 0.256 on 0..1
        print(f"{name}: validation {100 * accuracy(model, x[va], y[va]):.2f} %, "
              f"test {100 * accuracy(model, x[te], y[te]):.2f} %")


if __name__ == "__main__":
    main()
