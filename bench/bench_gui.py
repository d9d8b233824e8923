"""Does the GUI stay responsive while a run trains, and can the monitor redraw long curves?

    QT_QPA_PLATFORM=offscreen python bench/bench_gui.py [--seconds 20] [--points 100000] [--explain 40]

1. Timer gaps: a 10 ms QTimer ticks on the GUI thread while a real run (GradDiff on the demo)
   trains in the background and streams its events to the run monitor; the longest gap between
   ticks is how long the window could not react. Target (issue 6): < 50 ms. ``--explain MS``
   samples every thread's stack and prints, for each gap longer than MS, what ran during it.
2. Redraw rate: the monitor holds curves of ``--points`` steps (every loss term, total, lr and
   gradient norm); one redraw = recompute the curves and paint the widget. Target: ≥ 10 Hz,
   with smoothing off and on.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from array import array
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parent.parent


def measure_timer_gaps(app, seconds: float) -> dict:
    """Gaps between 10 ms timer ticks while a run trains; ``ticks`` are their perf_counter times."""
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    from unlearn_studio.core.events import StepEvent
    from unlearn_studio.core.project.config import RunConfig
    from unlearn_studio.gui.jobs import Jobs
    from unlearn_studio.gui.monitor import RunMonitor
    from unlearn_studio.gui.run_session import RunSession

    config = RunConfig.load(REPO / "projects" / "grad_diff.toml")
    config.training.max_steps, config.evaluation.suite = 100_000, "none"
    out = tempfile.mkdtemp(prefix="bench_gui_")
    config.output.dir = out
    jobs = Jobs()
    monitor = RunMonitor()
    monitor.resize(1100, 700)
    monitor.show()
    session = RunSession(jobs, None, config)
    monitor.attach(session)

    clock, gaps, steps, ticks = QElapsedTimer(), [], [], []
    loop = QEventLoop()
    last = [None]

    def tick() -> None:
        now = clock.elapsed()
        if last[0] is not None and steps:  # count only once training has started
            gaps.append(now - last[0])
            ticks.append(time.perf_counter())
        last[0] = now
        if steps and clock.elapsed() - steps[0] > seconds * 1000:
            loop.quit()

    def on_event(event) -> None:
        if isinstance(event, StepEvent) and not steps:
            steps.append(clock.elapsed())
        if isinstance(event, StepEvent):
            steps.append(clock.elapsed())

    session.event.connect(on_event)
    session.ended.connect(lambda _: loop.quit())
    session.crashed.connect(lambda error, trace: (print(trace, file=sys.stderr), loop.quit()))
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    clock.start()
    timer.start()
    session.start()
    loop.exec()
    session.cancel()
    done = QEventLoop()
    session.ended.connect(lambda _: done.quit())
    if session.running:
        done.exec()
    timer.stop()
    jobs.wait()
    return {"gaps": gaps, "ticks": ticks, "steps": max(0, len(steps) - 1), "redraws": monitor.view.redraws}


def measure_redraw_rate(points: int, smoothing: int, repeats: int = 20) -> float:
    from unlearn_studio.gui.monitor import RunMonitor

    monitor = RunMonitor()
    monitor.resize(1100, 700)
    monitor.show()
    steps = array("d", range(1, points + 1))
    rng = np.random.default_rng(0)
    for key in ("loss/forget", "loss/retain", "loss/total", "lr", "grad_norm"):  # stored as the monitor stores them
        monitor.view.series[key] = (steps, array("d", np.cumsum(rng.normal(size=points)) / 100 + 1))
    monitor.view.smoothing.setValue(smoothing)
    monitor.redraw()
    monitor.grab()  # first paint: layout and caches
    started = time.perf_counter()
    for _ in range(repeats):
        monitor.redraw()
        monitor.grab()  # paints every plot, as the screen would
    return repeats / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to watch the timer while training")
    parser.add_argument("--points", type=int, default=100_000, help="points per curve for the redraw test")
    parser.add_argument("--explain", type=float, metavar="MS", help="print what ran during each gap longer than MS")
    args = parser.parse_args()
    from unlearn_studio.gui import wheel_guard
    from unlearn_studio.gui.app import create_application

    app = create_application()
    wheel_guard.install(app)  # as the main window does: its filter sees every event of the app
    if args.explain:
        from stack_sampler import StackSampler

        with StackSampler() as sampler:
            result = measure_timer_gaps(app, args.seconds)
        for gap, end in zip(result["gaps"], result["ticks"]):
            if gap > args.explain:
                print(f"gap of {gap} ms ending {end - result['ticks'][0]:.2f} s in:")
                print("\n".join(sampler.explain(end - gap / 1000, end + 0.004)))
    else:
        result = measure_timer_gaps(app, args.seconds)
    gaps = result["gaps"]
    print(f"while training ({result['steps']} steps in {args.seconds:.0f} s, {result['redraws']} monitor redraws):")
    print(f"  GUI timer (10 ms): longest gap {max(gaps)} ms, 99th percentile "
          f"{statistics.quantiles(gaps, n=100)[98]:.0f} ms, median {statistics.median(gaps):.0f} ms "
          f"(target: longest < 50 ms)")
    for smoothing in (0, 60):
        rate = measure_redraw_rate(args.points, smoothing)
        print(f"  redraw of 5 curves x {args.points:,} points, smoothing {smoothing / 100:.2f}: {rate:.1f} Hz "
              f"(target >= 10 Hz)", flush=True)
    # PySide6 6.12 can crash tearing down pyqtgraph widgets at interpreter exit; the figures are out.
    os._exit(0)


if __name__ == "__main__":
    main()
