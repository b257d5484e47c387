"""Denoising networks: the UNet of the paper (appendix A) and its building blocks."""

from nidiff.nets.layers import AttentionBlock, ResBlock, TimeEmbedding, timestep_embedding
from nidiff.nets.unet import UNet, count_parameters, summarize

__all__ = [
    "AttentionBlock",
    "ResBlock",
    "TimeEmbedding",
    "UNet",
    "count_parameters",
    "summarize",
    "timestep_embedding",
]
