"""A progress bar for training loops: tqdm when it is installed, otherwise a
plain one-line bar on stderr (rnncore needs nothing beyond NumPy and SciPy).
"""
import sys
import time


class Progress:
    """``update(n, **stats)`` advances by n steps and shows the stats.

    With ``enabled=False`` every method does nothing.
    """

    def __init__(self, total, desc="", enabled=True, file=None):
        self._bar = None
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            self._bar = _TextBar(total, desc, file or sys.stderr)
        else:
            self._bar = tqdm(total=total, desc=desc, file=file, dynamic_ncols=True)

    def update(self, n=1, **stats):
        if self._bar is not None:
            self._bar.set_postfix(_format(stats), refresh=False)
            self._bar.update(n)

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _format(stats):
    return {k: f"{v:.4g}" if isinstance(v, float) else str(v)
            for k, v in stats.items()}


class _TextBar:
    """The subset of tqdm's interface that Progress uses."""

    WIDTH = 24
    INTERVAL = 0.2  # seconds between redraws

    def __init__(self, total, desc, file):
        self.total, self.desc, self.file = max(int(total), 1), desc, file
        self.n, self.postfix = 0, {}
        self._start = self._drawn = time.monotonic()
        self._draw()

    def set_postfix(self, postfix, refresh=False):
        self.postfix = postfix

    def update(self, n=1):
        self.n += n
        now = time.monotonic()
        if now - self._drawn >= self.INTERVAL or self.n >= self.total:
            self._drawn = now
            self._draw()

    def _draw(self):
        frac = min(self.n / self.total, 1.0)
        filled = int(frac * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        stats = ", ".join(f"{k}={v}" for k, v in self.postfix.items())
        elapsed = time.monotonic() - self._start
        line = (f"{self.desc}: {frac:4.0%} |{bar}| {self.n}/{self.total} "
                f"[{elapsed:.0f}s{', ' + stats if stats else ''}]")
        self.file.write("\r" + line)
        self.file.flush()

    def close(self):
        self._draw()
        self.file.write("\n")
        self.file.flush()
