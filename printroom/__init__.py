"""printroom: a print room's order emails on Temporal."""

TASK_QUEUE = "printroom"
