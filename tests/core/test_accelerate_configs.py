"""The accelerate config files in docs/accelerate load with accelerate's own reader, say what they
claim, and the FSDP one holds no option accelerate marks obsolete or unimplemented for FSDP 2."""

import logging
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.to_fsdp2 import ARGUMENT_KEY_MAPPING, ConversionStatus
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

CONFIGS = Path(__file__).resolve().parents[2] / "docs" / "accelerate"


@pytest.mark.parametrize("name, kind", [("multi_gpu", DistributedType.MULTI_GPU), ("fsdp", DistributedType.FSDP),
                                        ("deepspeed_zero2", DistributedType.DEEPSPEED),
                                        ("deepspeed_zero3", DistributedType.DEEPSPEED)])
def test_each_config_loads_as_what_it_claims(name, kind):
    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert config.distributed_type == kind and not config.use_cpu


def test_the_zero_stages_are_the_files_names():
    for stage in (2, 3):
        config = load_config_from_file(str(CONFIGS / f"deepspeed_zero{stage}.yaml"))
        assert config.deepspeed_config["zero_stage"] == stage


def plugin_warnings(fsdp_config: dict, caplog, monkeypatch) -> list[str]:
    """What accelerate warns when it builds its FSDP plugin from ``fsdp_config``, handed over as
    accelerate launch hands it to its processes (FSDP_* environment variables)."""
    for key, value in fsdp_config.items():
        monkeypatch.setenv(key.upper(), str(value).lower() if isinstance(value, bool) else str(value))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        FullyShardedDataParallelPlugin()
    return [record.getMessage() for record in caplog.records]


def test_fsdp_is_version_2_without_obsolete_options(caplog, monkeypatch):
    fsdp = load_config_from_file(str(CONFIGS / "fsdp.yaml")).fsdp_config
    assert fsdp["fsdp_version"] == 2
    dropped = {key for key, status in ARGUMENT_KEY_MAPPING.items() if isinstance(status, ConversionStatus)}
    assert not dropped & set(fsdp), dropped & set(fsdp)
    assert "fsdp_sharding_strategy" not in fsdp  # renamed to reshard_after_forward for FSDP 2
    assert plugin_warnings(fsdp, caplog, monkeypatch) == []

