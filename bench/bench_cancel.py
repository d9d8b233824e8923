"""How long from Ctrl-C to the end of `unlearn-studio run` on the demo projects (target, issue 13:
cancel to process exit within 2 s on a quiet machine).

    OMP_NUM_THREADS=1 python bench/bench_cancel.py [--repeats 3] [--only NAME]

Each case starts `unlearn-studio run` on a copy of a demo project (its runs, and the caches of the
evaluation and of ELM's sampled continuations, in a fresh temporary folder, so that the work the
case interrupts really happens), waits for the line that says the work is under way, then sends
SIGINT: once (stop and save), or twice 50 ms apart (the second cancels). It prints the time from
the last signal to the process's exit, the exit status and the run's last status line. An
absolute figure: most of it is our own waiting (the check between forward passes, the checkpoint
and adapter a stop writes, the interpreter's exit).

Cases: the demo's training (RMU), its evaluation before training, ELM's consistency sampling
(elm_demo, during the method's preparation) and ICU's preparation (neighbours, calibration and
the first refinement; icu_demo).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).with_name("unlearn-studio")
SECOND_PRESS_S = 0.05


@dataclass(frozen=True)
class Case:
    name: str
    project: str
    trigger: str  # a line of the run's output that says the work to interrupt is under way
    presses: int  # 1: stop and save; 2: cancel
    settings: str = ""  # TOML appended to the copy (e.g. no evaluation)


CASES = (
    Case("training, cancel", "demo.toml", "step ", 2, '[evaluation]\nsuite = "none"\n'),
    Case("training, stop and save", "demo.toml", "step ", 1, '[evaluation]\nsuite = "none"\n'),
    Case("evaluation before training, cancel", "demo.toml", "[evaluating] before", 2),
    Case("ELM consistency sampling, cancel", "elm_demo.toml", "ELM: sampling", 2, '[evaluation]\nsuite = "none"\n'),
    Case("ICU preparation, cancel", "icu_demo.toml", "[running]", 2, '[evaluation]\nsuite = "none"\n'),
)


def project_copy(case: Case, folder: Path) -> Path:
    """The demo project in ``folder`` (demo paths need no rebasing), its evaluation replaced if asked."""
    text = (REPO / "projects" / case.project).read_text(encoding="utf-8")
    if case.settings:
        head, _, tail = text.partition("[evaluation]")
        rest = tail.split("\n[", 1)
        text = head + case.settings + ("\n[" + rest[1] if len(rest) > 1 else "")
    path = folder / case.project
    path.write_text(text, encoding="utf-8")
    return path


def measure(case: Case) -> tuple[float, float, int, str]:
    """(seconds from the last SIGINT to the process's exit, and to the run's end line; the exit
    status; the run's last status line)."""
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "XDG_CACHE_HOME": str(Path(folder) / "cache"), "HF_HUB_OFFLINE": "1"}
        process = subprocess.Popen([str(EXE), "run", str(project_copy(case, Path(folder)))], cwd=folder, env=env,
                                   text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines = []
        try:
            for line in process.stdout:
                lines.append(line.rstrip())
                if case.trigger in line:
                    break
            else:
                raise SystemExit(f"{case.name}: the run ended before '{case.trigger}':\n" + "\n".join(lines[-20:]))
            process.send_signal(signal.SIGINT)
            if case.presses == 2:
                time.sleep(SECOND_PRESS_S)  # a person pressing twice
                process.send_signal(signal.SIGINT)
            asked = time.monotonic()
            ended = None
            rest = []
            for line in process.stdout:
                rest.append(line.rstrip())
                if ended is None and line.startswith(("[cancelled]", "[stopped]", "[finished]", "[failed]")):
                    ended = time.monotonic() - asked
            process.wait(timeout=600)
            seconds = time.monotonic() - asked
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        ending = [line for line in (lines + rest) if line.startswith("[")]
        return seconds, ended if ended is not None else float("nan"), process.returncode, ending[-1] if ending else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", help="run the cases whose name contains this text")
    args = parser.parse_args()
    print(f"{'case':<40} {'to exit: median':>15} {'max':>5} {'to the end line':>15}  exit  last status")
    for case in CASES:
        if args.only and args.only not in case.name:
            continue
        results = [measure(case) for _ in range(args.repeats)]
        seconds = [s for s, _, _, _ in results]
        ended = statistics.median(e for _, e, _, _ in results)
        _, _, code, status = results[-1]
        print(f"{case.name:<40} {statistics.median(seconds):>15.2f} {max(seconds):>5.2f} {ended:>15.2f}  {code:>4}  "
              f"{status[:60]}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} over the last minute (2 cores)")


if __name__ == "__main__":
    main()
