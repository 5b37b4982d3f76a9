"""Bounded decompression shared by every reader of possibly compressed input.

Inputs may be ``.gz`` or ``.zst`` (detected by magic bytes).  Expansion is bounded, so a
decompression bomb stops at the bound instead of filling memory.
"""

from __future__ import annotations

import gzip
import io
import zlib

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MAX_DECOMPRESSED_RATIO = 2000
"""A compressed input may expand at most this much (plus 64 MiB of slack)."""


class DecompressionError(ValueError):
    """Corrupt compressed data, or more output than the bound allows."""


def decompressed_limit(compressed_size: int) -> int:
    return compressed_size * MAX_DECOMPRESSED_RATIO + (64 << 20)


def decompress_bounded(raw: bytes, limit: int | None = None) -> bytes:
    """``raw`` decompressed if it is gzip or zstd (else returned as is), reading at most
    ``limit`` bytes (default: :func:`decompressed_limit` of its size)."""
    import zstandard

    bound = decompressed_limit(len(raw)) if limit is None else limit
    try:
        if raw[:2] == GZIP_MAGIC:
            out = gzip.GzipFile(fileobj=io.BytesIO(raw)).read(bound + 1)
        elif raw[:4] == ZSTD_MAGIC:
            out = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True).read(bound + 1)
        else:
            return raw
    except (OSError, EOFError, ValueError, zlib.error, zstandard.ZstdError) as e:
        raise DecompressionError(f"corrupt compressed data: {e}") from e
    if len(out) > bound:
        raise DecompressionError(f"decompressed size exceeds {bound} bytes (ratio bound {MAX_DECOMPRESSED_RATIO}x)")
    return out


__all__ = [
    "GZIP_MAGIC",
    "ZSTD_MAGIC",
    "MAX_DECOMPRESSED_RATIO",
    "DecompressionError",
    "decompressed_limit",
    "decompress_bounded",
]
