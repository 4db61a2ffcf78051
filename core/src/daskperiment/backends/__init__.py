"""The storage interface every backend implements, and the scheme registry.

Importing this package imports nothing above it: no plugin manager, no
:class:`~daskperiment.Experiment`. Backend authors import :class:`Backend` from
here and the record types from :mod:`daskperiment.records`.
"""

from ..records import HISTORY_FIELDS, STEP_HASH_LIMIT, MetricSeries
from .base import Backend, MetricSummaries
from .registry import BackendRegistry, backend_argument, mask_uri

__all__ = ["HISTORY_FIELDS", "Backend", "BackendRegistry", "MetricSeries", "MetricSummaries", "STEP_HASH_LIMIT",
           "backend_argument", "mask_uri"]
