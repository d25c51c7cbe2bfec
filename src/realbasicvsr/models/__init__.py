"""Network definitions. Module names mirror the reference so that official state dicts load by prefix only."""

from realbasicvsr.models.basicvsr import BasicVSR, ForwardState
from realbasicvsr.models.discriminator import UNetDiscriminator
from realbasicvsr.models.realbasicvsr import ModelConfig, RealBasicVSR, StreamState
from realbasicvsr.models.spynet import SPyNet

__all__ = ["BasicVSR", "ForwardState", "ModelConfig", "RealBasicVSR", "SPyNet", "StreamState", "UNetDiscriminator"]
