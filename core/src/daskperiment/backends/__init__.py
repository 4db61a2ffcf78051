"""The storage interface every backend implements, and the backend registry."""

from .base import HISTORY_FIELDS, STEP_HASH_LIMIT, Backend, MetricSeries
from .registry import BackendRegistry, get_backend_registry, make_backend, mask_uri

__all__ = ["HISTORY_FIELDS", "Backend", "BackendRegistry", "MetricSeries", "STEP_HASH_LIMIT", "get_backend_registry",
           "make_backend", "mask_uri"]
