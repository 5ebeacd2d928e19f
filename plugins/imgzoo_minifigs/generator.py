"""Procedural pictures of toy minifigures, the offline stand-in for the paper's photo dataset.

Every picture is a pure function of ``(seed, index)``: the scene is sampled from its own random
stream and drawn in normalized coordinates, so one ``(seed, index)`` shows the same figure at
every ``size``. The figure carries the color (saturated toy-palette plastic, classic yellow
skin); backgrounds stay muted, as in product photos. Drawing is flat OpenCV polygons plus one
blurred shading layer, which draws a 256x256 picture in about 2 ms.
"""

from __future__ import annotations

import colorsys
import math
from functools import lru_cache

import cv2
import numpy as np

__all__ = ["PALETTE", "render_minifig", "render_minifig_with_mask"]

Color = tuple[int, int, int]


def _hex(code: str) -> Color:
    return (int(code[0:2], 16), int(code[2:4], 16), int(code[4:6], 16))


#: Approximate RGB of the real toy palette, which the figure's plastic parts are drawn from.
PALETTE: dict[str, Color] = {
    "bright red": _hex("C91A09"),
    "bright blue": _hex("0055BF"),
    "bright yellow": _hex("F2CD37"),
    "bright green": _hex("4B9F4A"),
    "dark green": _hex("237841"),
    "white": _hex("F2F3F2"),
    "black": _hex("1B2A34"),
    "dark bluish gray": _hex("6C6E68"),
    "light bluish gray": _hex("A0A5A9"),
    "tan": _hex("E4CD9E"),
    "dark tan": _hex("958A73"),
    "orange": _hex("FE8A18"),
    "dark orange": _hex("A95500"),
    "dark red": _hex("720E0F"),
    "medium blue": _hex("5A93DB"),
    "dark blue": _hex("0A3463"),
    "dark azure": _hex("078BC9"),
    "lime": _hex("BBE90B"),
    "bright pink": _hex("E4ADC8"),
    "magenta": _hex("923978"),
    "medium lavender": _hex("AC78BA"),
    "reddish brown": _hex("582A12"),
    "sand green": _hex("A0BCAC"),
    "dark turquoise": _hex("008F9B"),
}
_PALETTE_COLORS: list[Color] = list(PALETTE.values())
# The classic bright colors dominate real sets; greys, browns and pastels are rarer.
_PALETTE_WEIGHTS = np.array(
    [3 if name.startswith(("bright", "white", "black", "orange", "medium blue")) else 1 for name in PALETTE],
    dtype=np.float64,
)
_PALETTE_WEIGHTS /= _PALETTE_WEIGHTS.sum()

_YELLOW_SKIN = PALETTE["bright yellow"]
_OTHER_SKINS: list[Color] = [_hex("F6D7B3"), _hex("D09168"), _hex("AA7D55"), _hex("7C503A")]
_HAIR_COLORS: list[Color] = [
    PALETTE["black"],
    PALETTE["reddish brown"],
    _hex("352100"),
    PALETTE["tan"],
    PALETTE["dark orange"],
    PALETTE["bright yellow"],
    PALETTE["dark bluish gray"],
    PALETTE["white"],
]
_INK: Color = (24, 24, 28)  # face and printing ink

# Figure geometry in "figure units": the figure is 1 tall from the top of the head to the soles,
# x to the right and y down, origin halfway. Measured roughly off a real minifigure.
_HEAD_TOP, _HEAD_BOTTOM, _HEAD_HALF_WIDTH = -0.5, -0.275, 0.115
_TORSO_TOP, _TORSO_BOTTOM = -0.265, 0.055
_TORSO_TOP_HALF, _TORSO_BOTTOM_HALF = 0.12, 0.18
_SHOULDER = (0.128, -0.225)
_ARM_LENGTH, _HAND_RADIUS = 0.22, 0.05
_HIP_TOP, _HIP_BOTTOM = 0.045, 0.13
_LEG_TOP, _LEG_BOTTOM = 0.1, 0.5

# Headgear: how far it reaches above the head (so the layout can keep it in the frame) and how
# often it is worn.
_HEADGEAR: dict[str, tuple[float, float]] = {
    "none": (0.035, 0.13),
    "short hair": (0.03, 0.24),
    "long hair": (0.03, 0.1),
    "cap": (0.06, 0.12),
    "hard hat": (0.08, 0.1),
    "top hat": (0.17, 0.07),
    "wizard hat": (0.24, 0.05),
    "knight helmet": (0.06, 0.09),
    "bandana": (0.04, 0.1),
}
_HEADGEAR_NAMES = list(_HEADGEAR)
_HEADGEAR_ODDS = np.array([odds for _, odds in _HEADGEAR.values()])
_HEADGEAR_ODDS /= _HEADGEAR_ODDS.sum()
_BACKGROUND_GRID = 128  # backgrounds are laid out at this resolution, then resized
_BACKGROUNDS = (
    "flat",
    "vertical gradient",
    "radial gradient",
    "floor and wall",
    "noise",
    "stripes",
    "checker",
    "studs",
)

_CIRCLE_STEPS = 20
_SUBPIXEL_BITS = 4  # fillPoly's `shift`: coordinates carry 4 fractional bits
_SUBPIXEL = float(1 << _SUBPIXEL_BITS)


def render_minifig(index: int, *, seed: int = 0, size: int = 256) -> np.ndarray:
    """Draw picture ``index`` of the set ``seed`` as a ``size`` x ``size`` x 3 uint8 RGB array."""
    image, _ = _render(index, seed=seed, size=size, with_mask=False)
    return image


def render_minifig_with_mask(index: int, *, seed: int = 0, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`render_minifig`, plus a ``size`` x ``size`` bool mask of the figure's pixels."""
    image, mask = _render(index, seed=seed, size=size, with_mask=True)
    assert mask is not None
    return image, mask > 127


def _render(index: int, *, seed: int, size: int, with_mask: bool) -> tuple[np.ndarray, np.ndarray | None]:
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be >= 0, got index={index}, seed={seed}")
    if size < 1:
        raise ValueError(f"size must be >= 1 pixel, got {size}")
    rng = np.random.default_rng([seed, index])

    # Every random draw below happens whatever the size, in the same order, which is what makes
    # one (seed, index) the same scene at every resolution.
    headgear = _HEADGEAR_NAMES[int(rng.choice(len(_HEADGEAR_NAMES), p=_HEADGEAR_ODDS))]
    top = _HEAD_TOP - _HEADGEAR[headgear][0]
    margin = 0.03  # of the image, kept clear around the figure; 0.36 below is its half-width
    scale = min(rng.uniform(0.55, 0.9), (1 - 2 * margin) / (_LEG_BOTTOM - top))
    centre_y = _between(rng, margin - top * scale, 1 - margin - _LEG_BOTTOM * scale)
    centre_x = _between(rng, margin + 0.36 * scale, 1 - margin - 0.36 * scale, spread=0.7)
    tilt = math.radians(rng.uniform(-10, 10))
    light_azimuth = math.radians(rng.uniform(-70, 70))  # 0 is light straight from above
    light = (math.sin(light_azimuth), -math.cos(light_azimuth))

    background = _draw_background(rng, size, horizon=centre_y + (_LEG_BOTTOM - rng.uniform(0.1, 0.3)) * scale)
    canvas = _Canvas(background, light, with_mask=with_mask, contrast=rng.uniform(0.2, 0.38))
    canvas.place(centre=(centre_x, centre_y), scale=scale, tilt=tilt)
    canvas.drop_shadow(strength=rng.uniform(0.2, 0.45))
    _draw_figure(canvas, rng, headgear)
    return _camera(canvas.finish(), rng), canvas.mask


def _between(rng: np.random.Generator, low: float, high: float, spread: float = 1.0) -> float:
    """A uniform draw in [low, high] shrunk by ``spread`` towards the middle (middle if empty)."""
    middle, half = (low + high) / 2, max(0.0, (high - low) / 2) * spread
    return float(middle + rng.uniform(-1, 1) * half)


# --------------------------------------------------------------------------------------------
# Colors
# --------------------------------------------------------------------------------------------


def _palette_color(rng: np.random.Generator, avoid: Color | None = None) -> Color:
    while True:
        color = _PALETTE_COLORS[int(rng.choice(len(_PALETTE_COLORS), p=_PALETTE_WEIGHTS))]
        if color != avoid:
            return color


def _muted_color(rng: np.random.Generator) -> np.ndarray:
    """A desaturated background color, as float32 RGB in 0..255."""
    hue = rng.random()
    saturation = rng.uniform(0.03, 0.3) if rng.random() < 0.85 else rng.uniform(0.3, 0.5)
    value = rng.uniform(0.5, 0.95) if rng.random() < 0.9 else rng.uniform(0.2, 0.5)
    return np.array(colorsys.hsv_to_rgb(hue, saturation, value), dtype=np.float32) * 255


def _darker(color: Color, factor: float) -> Color:
    return (int(color[0] * factor), int(color[1] * factor), int(color[2] * factor))


# --------------------------------------------------------------------------------------------
# Backgrounds
# --------------------------------------------------------------------------------------------


def _draw_background(rng: np.random.Generator, size: int, horizon: float) -> np.ndarray:
    """A muted backdrop as uint8 RGB; ``horizon`` is where a floor meets a wall (0..1 from the top).

    It is laid out on a fixed grid and then resized, which makes it the same at every size and
    slightly out of focus behind the figure, as in a photo.
    """
    kind = _BACKGROUNDS[int(rng.integers(len(_BACKGROUNDS)))]
    first, second = _muted_color(rng), _muted_color(rng)
    # Two close colors read as one surface; keep the second a gentle variation of the first
    # unless the pattern is meant to show two materials.
    if kind in ("vertical gradient", "radial gradient", "noise", "studs"):
        second = first * rng.uniform(0.7, 1.15) + (second - first) * 0.25
    count, vertical = int(rng.integers(4, 12)), rng.random() < 0.5
    softness = rng.uniform(0.1, 0.45)
    coarse_noise, fine_noise = rng.random((6, 6), dtype=np.float32), rng.random((16, 16), dtype=np.float32)

    grid = _BACKGROUND_GRID
    axis = (np.arange(grid, dtype=np.float32) + 0.5) / grid  # pixel centres, 0..1
    out = np.empty((grid, grid, 3), dtype=np.float32)
    if kind == "flat":
        out[:] = first
    elif kind == "vertical gradient":
        out[:] = _lerp(first, second, axis)[:, None, :]
    elif kind == "radial gradient":
        radius = np.sqrt((axis[:, None] - 0.5) ** 2 + (axis[None, :] - 0.45) ** 2) / 0.75
        out[:] = _lerp(first, second, np.minimum(radius, 1.0))
    elif kind == "floor and wall":
        floor_weight = np.clip((axis - horizon) * grid / 1.5 + 0.5, 0, 1)
        wall = _lerp(first, first * 0.85, axis)
        floor = _lerp(second * 1.05, second * 0.8, np.clip((axis - horizon) * 2, 0, 1))
        out[:] = _lerp(wall, floor, floor_weight)[:, None, :]
    elif kind == "noise":
        coarse = cv2.resize(coarse_noise, (grid, grid), interpolation=cv2.INTER_CUBIC)
        fine = cv2.resize(fine_noise, (grid, grid), interpolation=cv2.INTER_CUBIC)
        out[:] = _lerp(first, second, np.clip(0.75 * coarse + 0.25 * fine, 0, 1))
    elif kind == "stripes":
        wave = 0.5 + 0.5 * np.cos(axis * count * 2 * np.pi)
        profile = _lerp(first, second, np.clip((wave - 0.5) / softness + 0.5, 0, 1))
        out[:] = profile[None, :, :] if vertical else profile[:, None, :]
    elif kind == "checker":
        cells = (np.floor(axis * count).astype(np.int32) % 2).astype(bool)
        out[:] = np.where((cells[:, None] ^ cells[None, :])[..., None], first, second)
    else:  # studs: a baseplate seen from the front, each stud a disc with a shadowed rim
        offset = np.abs((axis * count) % 1.0 - 0.5)
        distance = np.sqrt(offset[:, None] ** 2 + offset[None, :] ** 2)
        edge = count / grid  # one grid pixel, in stud units: antialiases the discs
        rim = np.clip((0.36 - distance) / edge, 0, 1)
        top = np.clip((0.3 - distance) / edge, 0, 1)
        out[:] = _lerp(_lerp(first, first * 0.8, rim), np.broadcast_to(second, (grid, grid, 3)), top)
    small = np.clip(out, 0, 255).astype(np.uint8)
    shrink = size < grid
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Blend colors ``a`` -> ``b`` by weights ``t`` (the colors may themselves be arrays of them)."""
    return (a + (b - a) * t[..., None]).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Canvas: figure units -> pixels, plus the shading layers
# --------------------------------------------------------------------------------------------


class _Canvas:
    """Draws figure-unit polygons onto the picture and keeps the layers that shade them.

    ``shade`` multiplies the picture and ``gloss`` is added to it, both blurred at the end so that
    the hard-edged bands drawn per part become smooth gradients and soft highlights. Only the box
    around what was shaded (the figure and its shadow) is blended, to save time.
    """

    def __init__(
        self, background: np.ndarray, light: tuple[float, float], *, with_mask: bool, contrast: float
    ):
        self.size = background.shape[0]
        self.color = background
        self.shade = np.ones(background.shape[:2], dtype=np.float32)
        self.gloss = np.zeros(background.shape[:2], dtype=np.float32)
        self.mask = np.zeros(background.shape[:2], dtype=np.uint8) if with_mask else None
        self.light = np.array(light, dtype=np.float64)
        self.contrast = contrast
        self.matrix = np.eye(2)
        self.offset = np.zeros(2)
        self.pixels_per_unit = 1.0
        self.shaded_box = [math.inf, math.inf, -math.inf, -math.inf]  # x0, y0, x1, y1 in pixels

    def place(self, *, centre: tuple[float, float], scale: float, tilt: float) -> None:
        """Put the figure's origin at ``centre`` (0..1), ``scale`` image heights tall, tilted."""
        cos, sin = math.cos(tilt), math.sin(tilt)
        self.pixels_per_unit = scale * self.size
        self.matrix = np.array([[cos, sin], [-sin, cos]]) * self.pixels_per_unit
        # -0.5: OpenCV puts integer coordinates at pixel centres, normalized ones at pixel edges.
        self.offset = np.array(centre) * self.size - 0.5

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        return points @ self.matrix + self.offset

    def fill(self, points: np.ndarray, color: Color, *, solid: bool = True) -> None:
        """Fill a polygon given in figure units; ``solid`` parts belong to the figure's mask."""
        fixed = [_fixed_point(self.to_pixels(points))]
        cv2.fillPoly(self.color, fixed, color, cv2.LINE_AA, _SUBPIXEL_BITS)
        if solid and self.mask is not None:
            cv2.fillPoly(self.mask, fixed, 255, cv2.LINE_8, _SUBPIXEL_BITS)

    def stroke(self, points: np.ndarray, color: Color, width: float, *, closed: bool = False) -> None:
        """Draw a polyline of ``width`` figure units (at least one pixel)."""
        thickness = max(1, round(width * self.pixels_per_unit))
        fixed = [_fixed_point(self.to_pixels(points))]
        cv2.polylines(self.color, fixed, closed, color, thickness, cv2.LINE_AA, _SUBPIXEL_BITS)

    def plastic(self, points: np.ndarray, color: Color, *, gloss: float = 0.0) -> None:
        """Fill a moulded part: flat color, darker away from the light, optionally a highlight."""
        pixels = self.to_pixels(points)
        fixed = _fixed_point(pixels)
        cv2.fillPoly(self.color, [fixed], color, cv2.LINE_AA, _SUBPIXEL_BITS)
        if self.mask is not None:
            cv2.fillPoly(self.mask, [fixed], 255, cv2.LINE_8, _SUBPIXEL_BITS)
        low, high = pixels.min(axis=0), pixels.max(axis=0)
        self._grow_shaded_box(low, high)
        centre, half_extent = (low + high) / 2, (high - low) / 2
        # A dark copy of the part with a lit, shrunken copy nudged towards the light on top:
        # blurred, the two become a gradient across the part.
        lit = centre + (pixels - centre) * 0.72 + self.light * half_extent * 0.22
        cv2.fillPoly(self.shade, [fixed], 1.0 - self.contrast, cv2.LINE_8, _SUBPIXEL_BITS)
        cv2.fillPoly(self.shade, [_fixed_point(lit)], 1.0 + 0.25 * self.contrast, cv2.LINE_8, _SUBPIXEL_BITS)
        if gloss > 0:
            # Halfway to the corner that faces the light: inside the part whenever it is convex.
            corner = pixels[int(np.argmax(pixels @ self.light))]
            spot = (centre + corner) / 2
            cv2.circle(self.gloss, _pixel(spot), max(1, round(float(half_extent.min()) * 0.25)), gloss, -1)

    def drop_shadow(self, *, strength: float) -> None:
        """A soft contact shadow on the floor under the feet, cast away from the light."""
        feet = self.to_pixels(np.array([[0.0, _LEG_BOTTOM]]))[0]
        width = 0.32 * self.pixels_per_unit
        centre = feet + np.array([-self.light[0] * width * 0.35, -0.01 * self.pixels_per_unit])
        reach = np.array([width, width * 0.16])
        self._grow_shaded_box(centre - reach, centre + reach)
        for ring in (1.0, 0.75, 0.5):
            axes = (max(1, round(width * ring)), max(1, round(width * ring * 0.16)))
            darkness = 1.0 - strength * (1.3 - ring * 0.9)
            cv2.ellipse(self.shade, _pixel(centre), axes, 0, 0, 360, darkness, -1)

    def finish(self) -> np.ndarray:
        """Blend the blurred shading and highlights into the picture and return it (uint8 RGB)."""
        sigma = max(0.5, 0.01 * self.size)
        pad = math.ceil(3 * sigma) + 2
        x0, y0 = (max(0, math.floor(v) - pad) for v in self.shaded_box[:2])
        x1, y1 = (min(self.size, math.ceil(v) + pad) for v in self.shaded_box[2:])
        if x1 <= x0 or y1 <= y0:
            return self.color
        region = np.s_[y0:y1, x0:x1]
        shade = cv2.GaussianBlur(self.shade[region], (0, 0), sigma)
        gloss = cv2.GaussianBlur(self.gloss[region], (0, 0), sigma)
        lit = self.color[region].astype(np.float32)
        lit *= shade[..., None]
        lit += gloss[..., None] * 255
        np.clip(lit, 0, 255, out=lit)
        self.color[region] = lit
        return self.color

    def _grow_shaded_box(self, low: np.ndarray, high: np.ndarray) -> None:
        box = self.shaded_box
        box[0], box[1] = min(box[0], float(low[0])), min(box[1], float(low[1]))
        box[2], box[3] = max(box[2], float(high[0])), max(box[3], float(high[1]))


def _fixed_point(pixels: np.ndarray) -> np.ndarray:
    """Pixel coordinates as the int32 fixed-point numbers that OpenCV's ``shift`` expects."""
    return np.round(pixels * _SUBPIXEL).astype(np.int32)


def _pixel(point: np.ndarray) -> tuple[int, int]:
    return (round(float(point[0])), round(float(point[1])))


def _camera(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sometimes a touch of lens blur, sometimes faint sensor grain (each subtle)."""
    blur, blur_sigma = rng.random() < 0.3, rng.uniform(0.3, 0.8)
    grain, grain_sigma = rng.random() < 0.35, rng.uniform(1.0, 3.5)
    dy, dx = (int(v) for v in rng.integers(0, _GRAIN_MARGIN, size=2))
    size = image.shape[0]
    if blur:
        image = cv2.GaussianBlur(image, (0, 0), blur_sigma * size / 256)
    if grain:
        # Cut at a random place from a cached field: fresh normals would cost more than the rest.
        span = min(size, _GRAIN_TILE)
        noise = _grain_tile()[dy : dy + span, dx : dx + span]
        if size > span:
            repeats = math.ceil(size / span)
            noise = np.tile(noise, (repeats, repeats, 1))[:size, :size]
        image = cv2.addWeighted(image, 1.0, noise, grain_sigma / _GRAIN_SCALE, 0.0, dtype=cv2.CV_8U)
    return image


_GRAIN_TILE, _GRAIN_MARGIN = 512, 32
_GRAIN_SCALE = 16.0  # the cached grain is int16 with this standard deviation


@lru_cache(maxsize=1)
def _grain_tile() -> np.ndarray:
    shape = (_GRAIN_TILE + _GRAIN_MARGIN, _GRAIN_TILE + _GRAIN_MARGIN, 3)
    normals = np.random.default_rng(0x5EED).standard_normal(shape, dtype=np.float32)
    tile = np.round(normals * _GRAIN_SCALE).astype(np.int16)
    tile.flags.writeable = False
    return tile


# --------------------------------------------------------------------------------------------
# Shapes, in figure units
# --------------------------------------------------------------------------------------------


def _ellipse(cx: float, cy: float, rx: float, ry: float, start: int = 0, end: int = 360) -> np.ndarray:
    """Points along an elliptic arc, angles in degrees (y down, so 90 is the bottom)."""
    return _unit_arc(start, end) * (rx, ry) + (cx, cy)


@lru_cache(maxsize=64)
def _unit_arc(start: int, end: int) -> np.ndarray:
    steps = max(3, round(_CIRCLE_STEPS * abs(end - start) / 360))
    angles = np.radians(np.linspace(start, end, steps))
    arc = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    arc.flags.writeable = False  # shared by every caller
    return arc


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def _cylinder(cx: float, top: float, bottom: float, half_width: float, cap: float) -> np.ndarray:
    """A cylinder seen from the front and slightly above: a box with elliptic top and bottom."""
    upper = _ellipse(cx, top + cap, half_width, cap, 180, 360)
    lower = _ellipse(cx, bottom - cap, half_width, cap, 0, 180)
    return np.concatenate([upper, lower])


def _rotated(points: np.ndarray, pivot: tuple[float, float], angle: float) -> np.ndarray:
    """Rotate by ``angle`` radians about ``pivot``; positive turns +y towards +x."""
    cos, sin = math.cos(angle), math.sin(angle)
    centred = points - pivot
    return (
        np.stack([centred[:, 0] * cos + centred[:, 1] * sin, centred[:, 1] * cos - centred[:, 0] * sin], 1)
        + pivot
    )


def _mirrored(points: np.ndarray) -> np.ndarray:
    return points * np.array([-1.0, 1.0])


def _torso_half_width(y: float) -> float:
    t = (y - _TORSO_TOP) / (_TORSO_BOTTOM - _TORSO_TOP)
    return _TORSO_TOP_HALF + (_TORSO_BOTTOM_HALF - _TORSO_TOP_HALF) * t


def _torso_band(y0: float, y1: float) -> np.ndarray:
    """The part of the torso between heights ``y0`` and ``y1``, following its slanted sides."""
    w0, w1 = _torso_half_width(y0), _torso_half_width(y1)
    return np.array([[-w0, y0], [w0, y0], [w1, y1], [-w1, y1]])


# --------------------------------------------------------------------------------------------
# The figure
# --------------------------------------------------------------------------------------------


def _draw_figure(canvas: _Canvas, rng: np.random.Generator, headgear: str) -> None:
    torso = _palette_color(rng)
    arms = torso if rng.random() < 0.7 else _palette_color(rng)
    legs = _palette_color(rng, avoid=torso) if rng.random() < 0.8 else torso
    hips = legs if rng.random() < 0.8 else _palette_color(rng)
    skin = _YELLOW_SKIN if rng.random() < 0.8 else _OTHER_SKINS[int(rng.integers(len(_OTHER_SKINS)))]
    # Outward rotation of each arm from hanging (mostly relaxed, sometimes waving) and each leg.
    arm_angles = [math.radians(a) for a in rng.choice([8, 25, 60, 120], size=2, p=[0.35, 0.3, 0.2, 0.15])]
    arm_angles = [a + math.radians(rng.uniform(-8, 8)) for a in arm_angles]
    leg_angles = [math.radians(rng.uniform(-6, 14)) for _ in range(2)]

    _draw_legs(canvas, legs, hips, leg_angles)
    canvas.plastic(_torso_band(_TORSO_TOP, _TORSO_BOTTOM), torso, gloss=0.2)
    _draw_torso_print(canvas, rng, torso)
    for side, angle in zip((1, -1), arm_angles, strict=True):
        _draw_arm(canvas, arms, skin, angle, side)
    canvas.plastic(_rect(-0.05, _HEAD_BOTTOM - 0.02, 0.05, _TORSO_TOP + 0.01), skin)
    canvas.plastic(_cylinder(0.0, _HEAD_TOP, _HEAD_BOTTOM, _HEAD_HALF_WIDTH, 0.02), skin, gloss=0.3)
    _draw_face(canvas, rng)
    _draw_headgear(canvas, rng, headgear, skin)


def _draw_legs(canvas: _Canvas, legs: Color, hips: Color, angles: list[float]) -> None:
    for side, angle in zip((1, -1), angles, strict=True):
        pivot = (0.095, _LEG_TOP)
        leg = _rotated(_rect(0.012, _LEG_TOP, 0.18, _LEG_BOTTOM), pivot, angle)
        foot = _rotated(_rect(0.004, _LEG_BOTTOM - 0.045, 0.186, _LEG_BOTTOM), pivot, angle)
        if side < 0:
            leg, foot = _mirrored(leg), _mirrored(foot)
        canvas.plastic(leg, legs, gloss=0.15)
        canvas.fill(foot, _darker(legs, 0.8))
    canvas.plastic(_rect(-_TORSO_BOTTOM_HALF, _HIP_TOP, _TORSO_BOTTOM_HALF, _HIP_BOTTOM), hips)
    # The seam between the hip block and the two legs.
    canvas.stroke(np.array([[-0.17, _HIP_BOTTOM], [0.17, _HIP_BOTTOM]]), _darker(hips, 0.6), 0.006)


def _draw_arm(canvas: _Canvas, color: Color, skin: Color, angle: float, side: int) -> None:
    """One arm hanging from the shoulder, turned ``angle`` outwards, with its C-shaped hand."""
    # Drawn hanging from the origin, then turned about it and moved to the shoulder.
    arm = np.concatenate(
        [
            _ellipse(0.0, 0.0, 0.05, 0.05, 180, 360),  # rounded shoulder
            np.array([[0.045, _ARM_LENGTH], [-0.038, _ARM_LENGTH]]),
        ]
    )
    hand_centre = _ARM_LENGTH + _HAND_RADIUS * 0.75
    # A C: 270 degrees of ring, open away from the arm.
    outer = _ellipse(0.0, hand_centre, _HAND_RADIUS, _HAND_RADIUS, 135, 405)
    inner = _ellipse(0.0, hand_centre, _HAND_RADIUS * 0.48, _HAND_RADIUS * 0.48, 405, 135)
    hand = np.concatenate([outer, inner])
    wrist = _rect(-0.022, _ARM_LENGTH - 0.01, 0.022, _ARM_LENGTH + 0.012)
    for part, part_color, gloss in ((arm, color, 0.15), (wrist, skin, 0.0), (hand, skin, 0.0)):
        placed = _rotated(part, (0.0, 0.0), angle) + _SHOULDER
        canvas.plastic(_mirrored(placed) if side < 0 else placed, part_color, gloss=gloss)


def _draw_torso_print(canvas: _Canvas, rng: np.random.Generator, torso: Color) -> None:
    kind = str(rng.choice(["none", "stripe", "logo", "zipper", "tie", "suspenders", "buttons"]))
    ink = _palette_color(rng, avoid=torso)
    y = rng.uniform(-0.17, -0.02)
    if kind == "stripe":
        canvas.fill(_torso_band(y, y + 0.045), ink)
    elif kind == "logo":
        canvas.fill(_ellipse(0.0, -0.14, 0.055, 0.055), ink)
        canvas.fill(_ellipse(0.0, -0.14, 0.03, 0.03), _palette_color(rng, avoid=ink))
    elif kind == "zipper":
        dark = _darker(torso, 0.55)
        canvas.stroke(np.array([[0.0, _TORSO_TOP + 0.01], [0.0, _TORSO_BOTTOM]]), dark, 0.008)
        for x in (-0.1, 0.1):
            canvas.stroke(np.array([[x - 0.035, y + 0.08], [x + 0.035, y + 0.08]]), dark, 0.006)
    elif kind == "tie":
        canvas.fill(np.array([[-0.06, _TORSO_TOP], [0.06, _TORSO_TOP], [0.0, -0.16]]), PALETTE["white"])
        tie = np.array([[-0.015, -0.25], [0.015, -0.25], [0.03, -0.06], [0.0, -0.03], [-0.03, -0.06]])
        canvas.fill(tie, ink)
    elif kind == "suspenders":
        for x in (-0.07, 0.07):
            canvas.stroke(np.array([[x, _TORSO_TOP], [x * 1.25, _TORSO_BOTTOM]]), ink, 0.02)
    elif kind == "buttons":
        for button_y in (-0.17, -0.1, -0.03):
            canvas.fill(_ellipse(0.0, button_y, 0.012, 0.012), _INK)


def _draw_face(canvas: _Canvas, rng: np.random.Generator) -> None:
    expression = str(
        rng.choice(["smile", "grin", "frown", "surprised", "smirk", "flat"], p=[0.4, 0.2, 0.1, 0.1, 0.1, 0.1])
    )
    eye_gap, eye_y = rng.uniform(0.035, 0.05), rng.uniform(-0.42, -0.4)
    brows, glasses, glints = rng.random() < 0.4, rng.random() < 0.12, rng.random() < 0.5
    brow_slant = rng.uniform(-0.012, 0.012)  # raised or knitted brows
    for side in (-1, 1):
        x = side * eye_gap
        canvas.fill(_ellipse(x, eye_y, 0.013, 0.019), _INK, solid=False)
        if glints:
            canvas.fill(_ellipse(x + 0.004, eye_y - 0.007, 0.004, 0.004), (250, 250, 250), solid=False)
        if brows:
            brow = [
                [x - side * 0.018, eye_y - 0.035 + brow_slant],
                [x + side * 0.018, eye_y - 0.035 - brow_slant],
            ]
            canvas.stroke(np.array(brow), _INK, 0.008)
        if glasses:
            canvas.stroke(_ellipse(x, eye_y, 0.028, 0.026), _INK, 0.006, closed=True)
    mouth_y = eye_y + 0.065
    if expression == "smile":
        canvas.stroke(_ellipse(0.0, mouth_y - 0.015, 0.045, 0.025, 20, 160), _INK, 0.009)
    elif expression == "grin":
        canvas.fill(_ellipse(0.0, mouth_y - 0.008, 0.045, 0.035, 0, 180), _INK, solid=False)
        canvas.fill(_rect(-0.035, mouth_y - 0.006, 0.035, mouth_y + 0.004), (250, 250, 250), solid=False)
    elif expression == "frown":
        canvas.stroke(_ellipse(0.0, mouth_y + 0.02, 0.04, 0.02, 200, 340), _INK, 0.009)
    elif expression == "surprised":
        canvas.fill(_ellipse(0.0, mouth_y + 0.005, 0.016, 0.02), _INK, solid=False)
    elif expression == "smirk":
        canvas.stroke(_ellipse(0.01, mouth_y - 0.01, 0.035, 0.018, 10, 120), _INK, 0.009)
    else:
        canvas.stroke(np.array([[-0.03, mouth_y + 0.005], [0.03, mouth_y + 0.005]]), _INK, 0.009)


def _draw_headgear(canvas: _Canvas, rng: np.random.Generator, headgear: str, skin: Color) -> None:
    hair = _HAIR_COLORS[int(rng.integers(len(_HAIR_COLORS)))]
    hat = _palette_color(rng, avoid=skin)
    trim = _palette_color(rng, avoid=hat)
    top, half = _HEAD_TOP, _HEAD_HALF_WIDTH
    if headgear == "none":
        canvas.plastic(_cylinder(0.0, top - 0.035, top + 0.01, 0.06, 0.012), skin, gloss=0.2)
    elif headgear in ("short hair", "long hair"):
        reach = -0.38 if headgear == "short hair" else -0.22
        flare = 0.0 if headgear == "short hair" else 0.035
        dome = _ellipse(0.0, top + 0.05, half + 0.012, 0.08, 180, 360)
        # Fringe: a zigzag across the forehead, from the right temple back to the left one.
        fringe_x = np.linspace(half, -half, 7)
        fringe_y = top + 0.045 + 0.018 * (np.arange(7) % 2)
        outline = np.concatenate(
            [
                [[-half - 0.012 - flare, reach]],
                dome,
                [[half + 0.012 + flare, reach], [half - 0.01, reach]],
                np.stack([fringe_x, fringe_y], 1),
                [[-half + 0.01, reach]],
            ]
        )
        canvas.plastic(outline, hair, gloss=0.3)
    elif headgear == "cap":
        canvas.plastic(_ellipse(0.0, top + 0.035, half + 0.01, 0.09, 180, 360), hat, gloss=0.3)
        canvas.plastic(_ellipse(0.0, top + 0.035, half + 0.06, 0.025), _darker(hat, 0.85))
    elif headgear == "hard hat":
        canvas.plastic(_ellipse(0.0, top + 0.045, half + 0.02, 0.12, 180, 360), hat, gloss=0.4)
        canvas.plastic(_ellipse(0.0, top + 0.045, half + 0.055, 0.022), hat)
        canvas.stroke(np.array([[0.0, top - 0.07], [0.0, top + 0.03]]), _darker(hat, 0.75), 0.012)
    elif headgear == "top hat":
        canvas.plastic(_rect(-0.09, top - 0.16, 0.09, top + 0.01), hat, gloss=0.3)
        canvas.fill(_rect(-0.09, top - 0.04, 0.09, top - 0.005), trim)
        canvas.plastic(_ellipse(0.0, top + 0.01, half + 0.06, 0.025), hat)
    elif headgear == "wizard hat":
        lean = rng.uniform(-0.06, 0.06)
        canvas.plastic(
            np.array([[lean, top - 0.23], [half + 0.01, top + 0.01], [-half - 0.01, top + 0.01]]),
            hat,
            gloss=0.3,
        )
        canvas.plastic(_ellipse(0.0, top + 0.015, half + 0.08, 0.028), hat)
    elif headgear == "knight helmet":
        shell = _cylinder(0.0, top - 0.05, _HEAD_BOTTOM + 0.01, half + 0.022, 0.04)
        visor = _rect(-half + 0.015, top + 0.06, half - 0.015, _HEAD_BOTTOM - 0.035)[::-1]
        metal = PALETTE["light bluish gray"] if rng.random() < 0.6 else hat
        canvas.plastic(np.concatenate([shell, shell[:1], visor, visor[:1]]), metal, gloss=0.5)
        canvas.stroke(np.array([[0.0, top - 0.05], [0.0, top + 0.06]]), _darker(metal, 0.7), 0.02)
    else:  # bandana, knotted at the side
        canvas.plastic(
            np.concatenate(
                [
                    _ellipse(0.0, top + 0.04, half + 0.008, 0.07, 180, 360),
                    [[half, top + 0.07], [-half, top + 0.07]],
                ]
            ),
            hat,
        )
        canvas.plastic(
            np.array(
                [[half, top + 0.05], [half + 0.07, top + 0.1], [half + 0.04, top + 0.12], [half, top + 0.07]]
            ),
            hat,
        )
