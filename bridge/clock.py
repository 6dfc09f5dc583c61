"""Time, in one place so it reads the same everywhere (milliseconds since the epoch)."""

import time


def now_ms() -> int:
    return int(time.time() * 1000)
