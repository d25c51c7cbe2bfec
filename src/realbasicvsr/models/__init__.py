"""Network definitions. Module names mirror the reference so that official state dicts load by prefix only."""

from realbasicvsr.models.basicvsr import BasicVSR
from realbasicvsr.models.discriminator import UNetDiscriminator
from realbasicvsr.models.realbasicvsr import ModelConfig, RealBasicVSR
from realbasicvsr.models.spynet import SPyNet

__all__ = ["BasicVSR", "ModelConfig", "RealBasicVSR", "SPyNet", "UNetDiscriminator"]
