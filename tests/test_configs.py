"""Every shipped training config loads, names valid model fields and passes the trainer's checks."""

import pathlib
import runpy

import pytest

from lavie_jax import train
from lavie_jax.models import unet3d, vae

CONFIGS = sorted(
    p.stem
    for p in (pathlib.Path(__file__).resolve().parents[1] / "configs").glob("*.py")
    if not p.stem.endswith("_common")
)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_is_valid(name):
    path = pathlib.Path(__file__).resolve().parents[1] / "configs" / f"{name}.py"
    config = runpy.run_path(str(path))["get_config"]()
    config.lock()
    train.validate_config(config)
    if config.stage == "vae":
        vae.VAEConfig.from_dict(config.vae.to_dict())
    else:
        unet3d.UNet3DConfig.from_dict(config.model.to_dict())
    with pytest.raises(AttributeError):  # locked like on the command line: typos are errors
        config.optim.learning_rat = 1.0
