"""Firmware package store: downloads that are complete and verified, or nothing.

- `store`: the entry's directory, ready packages, pruning.
- `download`: HTTP(S) streaming with `Range` resume and retries (EnOS).
- `partial`: a file assembled from chunks at offsets, resumable (Miling).
- `base`: errors, results, checksums and the disk writes they share.

No Home Assistant imports.
"""

from __future__ import annotations

from .base import (
    DownloadError,
    Expected,
    InsufficientSpaceError,
    IntegrityError,
    Package,
    PackageError,
    Progress,
    StorageError,
    download_owner,
    hash_file,
)
from .download import RetryPolicy
from .partial import PartialFile
from .store import PackageStore

__all__ = [
    "DownloadError",
    "Expected",
    "InsufficientSpaceError",
    "IntegrityError",
    "Package",
    "PackageError",
    "PackageStore",
    "PartialFile",
    "Progress",
    "RetryPolicy",
    "StorageError",
    "download_owner",
    "hash_file",
]
