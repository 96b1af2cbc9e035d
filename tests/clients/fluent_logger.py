"""Sends events to Vigil with PyPI fluent-logger (Message mode).

Usage: fluent_logger.py HOST PORT TAG COUNT
Half the events carry integer times, half EventTime (nanosecond_precision).
Exits 1 if an emit fails.
"""
import sys

from fluent import sender

host, port, tag, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
plain = sender.FluentSender(tag, host=host, port=port)
precise = sender.FluentSender(tag, host=host, port=port, nanosecond_precision=True)
failed = 0
for i in range(count):
    logger = precise if i % 2 else plain
    if not logger.emit("py", {"message": f"python-{i}", "index": i}):
        failed += 1
        print(f"emit {i} failed: {logger.last_error}", file=sys.stderr)
plain.close()
precise.close()
sys.exit(1 if failed else 0)
