"""Adapters combined in the app (Ext-Sub and plain LoRA arithmetic, core/model/adapters.py) are
recorded as a run of the project: the result is listed with the project's runs, and Compare,
Evaluate and Export work on it as on any trained run.

The run's folder is new, carries the app's run marker and holds the combined adapter in its
``adapter/`` folder, where every trained run keeps its final adapter.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.files import check_output_folder, write_dir_atomically
from unlearn_studio.core.model.adapters import combine_adapters
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.checkpoint import ADAPTER

METHOD = "ext_sub"  # the method whose second stage this is


def check_pair(expert: str | os.PathLike, anti_expert: str | os.PathLike | None) -> None:
    """Refuse the same adapter as expert and anti-expert: every operation would be pointless
    (Ext-Sub removes nothing the two share, subtraction removes the whole adapter)."""
    if anti_expert is None:
        return
    if Path(expert).expanduser().resolve() == Path(anti_expert).expanduser().resolve():
        raise UserError(f"The expert and the anti-expert are the same adapter ({Path(expert).expanduser()})",
                        "Choose two different adapters: the expert trained on data that shows the wanted "
                        "behaviour, the anti-expert on data that shows the deficiency.")


def combine_as_run(store, project_id: int, config: RunConfig, expert: str | os.PathLike,
                   anti_expert: str | os.PathLike | None, out: str | os.PathLike, *, op: str = "ext-sub",
                   alpha: float = 1.0) -> str:
    """Combine the two adapters into ``out``/adapter and record it as a finished run of the
    project ``config`` (the base model the adapters were trained on). Returns the run id.
    Bad input (the same adapter twice, a folder that is not new or empty, adapters that do not
    fit together) is refused before anything is written."""
    check_pair(expert, anti_expert)
    out = check_output_folder(out, what="combined adapter")
    record = copy.deepcopy(config)
    record.name = f"{config.name}: {op} of two adapters"
    record.method.name = METHOD
    record.method.params = {"op": op, "alpha": float(alpha)}
    anti = f" and the anti-expert {anti_expert}" if anti_expert is not None else ""
    record.description = f"{op} (alpha {alpha:g}) of the expert {expert}{anti}, combined in the app."
    write_dir_atomically(out, lambda folder: combine_adapters(expert, anti_expert, folder / ADAPTER, op=op,
                                                              alpha=alpha), kind="run", what="combined adapter")
    run_id = store.start_run(project_id, record, out)
    store.set_status(run_id, "finished")
    store.add_artifact(run_id, "adapter", out / ADAPTER)
    return run_id
