"""Boxes and pixel coordinates in image pixels: what detectors give, trackers follow and drawings
mark. Pixel centers are integer coordinates, as in OpenCV."""

from dataclasses import dataclass


def scaled_pixel(v, factor: float):
    """Pixel coordinate v (a number or an array) in an image `factor` times larger: pixel centers
    map to pixel centers, so p there is (p + 0.5) * factor - 0.5."""
    return (v + 0.5) * factor - 0.5


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in image pixels."""

    x: float
    y: float
    width: float
    height: float

    def as_dict(self) -> dict:
        return {"x": int(self.x), "y": int(self.y), "width": int(self.width), "height": int(self.height)}

    def within(self, other: "Box") -> bool:
        """Whether this box lies inside the other (edges may meet)."""
        return (
            other.x <= self.x
            and other.y <= self.y
            and self.x + self.width <= other.x + other.width
            and self.y + self.height <= other.y + other.height
        )

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height / 2

    def scaled(self, factor: float) -> "Box":
        """This box in an image `factor` times larger (`scaled_pixel`)."""
        if factor == 1:
            return self
        return Box(
            scaled_pixel(self.x, factor), scaled_pixel(self.y, factor), self.width * factor, self.height * factor
        )


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes: 1 for the same box, 0 for boxes that do not touch."""
    ix = max(0.0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.height, b.y + b.height) - max(a.y, b.y))
    inter = ix * iy
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0
