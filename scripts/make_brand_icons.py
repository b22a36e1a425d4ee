"""Draw the brand icons (custom_components/firmware_hub/brand/icon*.png).

Pure standard library: a chip with an upward arrow on a rounded blue square.
Run: python3 scripts/make_brand_icons.py
"""

from __future__ import annotations

from pathlib import Path
import struct
import zlib

OUT = Path(__file__).resolve().parent.parent / "custom_components/firmware_hub/brand"
BLUE = (3, 169, 244)
WHITE = (255, 255, 255)


def _inside(x: float, y: float) -> tuple[int, int, int, int]:
    """Colour at (x, y) in a unit square (0..1)."""

    def rounded(x0: float, y0: float, x1: float, y1: float, r: float) -> bool:
        cx = min(max(x, x0 + r), x1 - r)
        cy = min(max(y, y0 + r), y1 - r)
        return (
            x0 <= x <= x1 and y0 <= y <= y1 and (x - cx) ** 2 + (y - cy) ** 2 <= r * r
        )

    if not rounded(0.02, 0.02, 0.98, 0.98, 0.18):
        return (0, 0, 0, 0)
    chip = rounded(0.25, 0.25, 0.75, 0.75, 0.06)
    hole = rounded(0.32, 0.32, 0.68, 0.68, 0.03)
    pins = any(
        (abs(x - p) < 0.025 and (0.14 < y < 0.25 or 0.75 < y < 0.86))
        or (abs(y - p) < 0.025 and (0.14 < x < 0.25 or 0.75 < x < 0.86))
        for p in (0.36, 0.5, 0.64)
    )
    arrow_head = 0.36 <= y <= 0.52 and abs(x - 0.5) <= (y - 0.36) * 0.9
    arrow_shaft = 0.5 <= y <= 0.64 and abs(x - 0.5) <= 0.04
    white = (chip and not hole) or pins or arrow_head or arrow_shaft
    return (*WHITE, 255) if white else (*BLUE, 255)


def draw(size: int, samples: int = 3) -> bytes:
    """Return a PNG of the icon, `size` pixels square, anti-aliased."""
    rows = []
    for py in range(size):
        row = bytearray([0])
        for px in range(size):
            acc = [0, 0, 0, 0]
            for sy in range(samples):
                for sx in range(samples):
                    colour = _inside(
                        (px + (sx + 0.5) / samples) / size,
                        (py + (sy + 0.5) / samples) / size,
                    )
                    for i in range(4):
                        acc[i] += colour[i] * (colour[3] if i < 3 else 255)
            alpha = acc[3] // (255 * samples * samples)
            rgb = [acc[i] // max(1, acc[3] // 255) if acc[3] else 0 for i in range(3)]
            row += bytes([*rgb, alpha])
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def main() -> None:
    """Write icon.png (256) and icon@2x.png (512)."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "icon.png").write_bytes(draw(256))
    (OUT / "icon@2x.png").write_bytes(draw(512))


if __name__ == "__main__":
    main()
