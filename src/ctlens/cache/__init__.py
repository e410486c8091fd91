"""On-disk cache of preprocessed volumes, its metadata, and HDF5 export.

Example:
    >>> from ctlens.cache import CacheManager, DatasetMetadata
    >>> CacheManager("data").processed.as_posix()
    'data/processed'
"""

from ctlens.cache.hdf5_export import ExportReport, export_hdf5
from ctlens.cache.hdf5_sources import discover_volumes
from ctlens.cache.layout import CacheSettings
from ctlens.cache.manager import BuildReport, CacheManager, CacheStats, Failure
from ctlens.cache.metadata import DatasetMetadata, ImageEntry

__all__ = [
    "BuildReport",
    "CacheManager",
    "CacheSettings",
    "CacheStats",
    "DatasetMetadata",
    "ExportReport",
    "Failure",
    "ImageEntry",
    "discover_volumes",
    "export_hdf5",
]
