"""Strict checks for the array endpoints' inputs.

BentoML's `Shape` validator reshapes rather than checks (a (2, 784) list passes as (2, 1, 28, 28))
and `DType` casts; this runs first, on the raw value, and refuses anything that is not exactly an
(N, *item) batch of finite numbers in [0, 1]. An InputError here (a ValueError, which pydantic
reports for a JSON field) is a 400 with the reason.
"""

import io
import math
import re

import numpy as np

from vision.errors import InputError

NPY_MAGIC = b"\x93NUMPY"


def batch_of(*item: int):
    def check(value):
        if isinstance(value, np.ndarray):
            if value.dtype != np.float32:
                raise InputError(f"expected a float32 array, got {value.dtype}")
            array = value
        else:
            try:
                array = np.asarray(value)
            except ValueError:
                raise InputError("expected a rectangular nested list of numbers") from None
            if array.dtype.kind not in "iuf":  # bools, strings, None, ragged lists
                raise InputError(f"expected numbers, got {array.dtype.name} values")
        if array.ndim != len(item) + 1 or tuple(array.shape[1:]) != item:
            want = ", ".join(map(str, ("N", *item)))
            raise InputError(f"expected shape ({want}), got {tuple(array.shape)}")
        if array.shape[0] == 0:
            raise InputError("expected at least one item, got an empty batch")
        if not np.isfinite(array).all():
            raise InputError("the array contains NaN or infinite values")
        if array.min() < 0 or array.max() > 1:
            raise InputError(f"values must lie in [0, 1], got [{array.min():g}, {array.max():g}]")
        return array.astype(np.float32, copy=False)

    return check


def npy_reason(error: Exception) -> str:
    """numpy's reason for refusing a .npy file, in one line, without the part of the upload it
    quotes ("descr is not a valid dtype descriptor: '...'"): no refusal echoes what was sent."""
    reason = " ".join(str(error).split())
    head, colon, tail = reason.partition(": ")
    if colon and re.search(r"['\"\[\]{}<>]", tail):
        reason = head
    return reason[:120] or type(error).__name__


def uploaded_batch(data: bytes, shape: str | None, item: tuple[int, ...]) -> np.ndarray:
    """An uploaded .npy file, or raw little-endian float32 bytes with `shape` ("N,1,28,28") -> the
    checked (N, *item) float32 batch. An InputError says what is wrong, in one line."""
    if data.startswith(NPY_MAGIC):
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise InputError(f"not a readable .npy file ({npy_reason(e)})") from None
        if not isinstance(array, np.ndarray):
            raise InputError("expected one array in the .npy file")
        if array.dtype.kind == "f" and array.dtype != np.float32:  # numpy's default float64, or float16
            array = array.astype(np.float32)
    else:
        want = ",".join(map(str, ("N", *item)))
        if not shape:
            raise InputError(f"raw bytes need the field shape={want} (or send a .npy file)")
        try:
            dims = tuple(int(d) for d in shape.replace("x", ",").split(","))
        except ValueError:
            raise InputError(f"shape={shape!r}: expected whole numbers, e.g. {want}") from None
        if any(d < 0 for d in dims) or math.prod(dims) * 4 != len(data):
            raise InputError(f"{len(data)} bytes are not float32 values of shape {dims} ({math.prod(dims) * 4} bytes)")
        array = np.frombuffer(data, dtype="<f4").reshape(dims)
    return batch_of(*item)(array)
