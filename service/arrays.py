"""Strict checks for the array endpoints' inputs.

BentoML's `Shape` validator reshapes rather than checks (a (2, 784) list passes as (2, 1, 28, 28))
and `DType` casts; this runs first, on the raw value, and refuses anything that is not exactly an
(N, *item) batch of finite numbers in [0, 1]. A ValueError here is a 400 with the reason.
"""

import numpy as np


def batch_of(*item: int):
    def check(value):
        if isinstance(value, np.ndarray):
            if value.dtype != np.float32:
                raise ValueError(f"expected a float32 array, got {value.dtype}")
            array = value
        else:
            try:
                array = np.asarray(value)
            except ValueError:
                raise ValueError("expected a rectangular nested list of numbers") from None
            if array.dtype.kind not in "iuf":  # bools, strings, None, ragged lists
                raise ValueError(f"expected numbers, got {array.dtype.name} values")
        if array.ndim != len(item) + 1 or tuple(array.shape[1:]) != item:
            want = ", ".join(map(str, ("N", *item)))
            raise ValueError(f"expected shape ({want}), got {tuple(array.shape)}")
        if array.shape[0] == 0:
            raise ValueError("expected at least one item, got an empty batch")
        if not np.isfinite(array).all():
            raise ValueError("the array contains NaN or infinite values")
        if array.min() < 0 or array.max() > 1:
            raise ValueError(f"values must lie in [0, 1], got [{array.min():g}, {array.max():g}]")
        return array.astype(np.float32, copy=False)

    return check
