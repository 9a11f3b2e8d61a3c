"""Progress shown to the user on stderr: one line per finished stage, a live bar for long loops."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator


class Progress:
    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._console = None

    @property
    def console(self):
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)
        return self._console

    @contextlib.contextmanager
    def stage(self, label: str) -> Iterator[None]:
        """A spinner while ``label`` runs, then ``✓ label (1.2 s)``."""
        if self.quiet:
            yield
            return
        t0 = time.perf_counter()
        with self.console.status(f"{label} …"):
            yield
        self.console.print(f"[green]✓[/] {label} [dim]({time.perf_counter() - t0:.1f} s)[/]")

    @contextlib.contextmanager
    def bar(self, label: str, total: int) -> Iterator[Callable[[int], None]]:
        """A progress bar over ``total`` units; yields ``advance(n)``."""
        if self.quiet or not self.console.is_terminal:
            with self.stage(label):
                yield lambda n: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        t0 = time.perf_counter()
        with RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=self.console, transient=True) as p:
            task = p.add_task(label, total=total)
            yield lambda n: p.advance(task, n)
        self.console.print(f"[green]✓[/] {label} [dim]({time.perf_counter() - t0:.1f} s)[/]")

    def note(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)

    def warn(self, text: str) -> None:
        if not self.quiet:
            self.console.print(f"[yellow]warning:[/] {text}")
