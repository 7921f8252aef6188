"""The work-order domain: models, lifecycle, tracking numbers, repositories and the bus."""
