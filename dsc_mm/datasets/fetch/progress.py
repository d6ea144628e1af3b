"""A byte progress bar for the downloads that suits both a terminal and a CI log."""
import sys
import time

MIB = 2 ** 20


class Progress:
    """Counts downloaded bytes against a total.

    On a terminal it redraws one line (at most 10 times a second); elsewhere (a log file, CI)
    it prints one line per tenth of the total, so a log gets 10 lines, not one per chunk.

    Args:
        total (int): Bytes to download.
        files (int): Files to download (shown beside the bytes).
        stream (file, optional): Where to write. Defaults to ``sys.stdout``.
    """

    def __init__(self, total: int, files: int, stream=None):
        self.total = max(total, 1)
        self.files = files
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.done = 0
        self.files_done = 0
        self.last_draw = 0.
        self.last_tenth = 0
        self.start = time.monotonic()

    def add(self, nbytes: int) -> None:
        """``nbytes`` more bytes arrived (negative when a server ignored a resume)."""
        self.done += nbytes
        self._show()

    def file_done(self) -> None:
        self.files_done += 1
        self._show()

    def _line(self) -> str:
        fraction = min(self.done / self.total, 1.)
        bar = '#' * int(fraction * 30)
        return (f'[fetch_data] [{bar:<30}] {fraction:4.0%} {self.done / MIB:6.1f}/'
                f'{self.total / MIB:.1f} MiB, {self.files_done}/{self.files} files, '
                f'{time.monotonic() - self.start:.0f} s')

    def _show(self) -> None:
        if self.tty:
            now = time.monotonic()
            if now - self.last_draw >= 0.1 or self.files_done == self.files:
                self.last_draw = now
                self.stream.write('\r' + self._line())
                self.stream.flush()
        else:
            tenth = int(10 * self.done / self.total)
            if tenth > self.last_tenth:
                self.last_tenth = tenth
                print(self._line(), file=self.stream, flush=True)

    def close(self) -> None:
        """End the terminal line."""
        if self.tty:
            self.stream.write('\r' + self._line() + '\n')
            self.stream.flush()
