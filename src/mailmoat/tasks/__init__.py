"""Long-running work (recall, re-scan, automatic recall, profile upkeep) on a task queue or in-process."""
