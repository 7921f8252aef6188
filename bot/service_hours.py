"""Re-export: `ServiceHours` lives in `store.service_hours` (the store computes queue facts
from it; `bot` may import `store`, never the other way)."""

from store.service_hours import ServiceHours, ServiceHoursError

__all__ = ["ServiceHours", "ServiceHoursError"]
