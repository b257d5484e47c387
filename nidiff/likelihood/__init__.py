"""The variational bound on the negative log-likelihood, in bits per dimension (VDM, per coefficient).

| module          | concept                                                        |
| --------------- | -------------------------------------------------------------- |
| ``bound``       | prior, diffusion and decoder terms of one batch: ``bits_per_dim`` |
| ``dataset``     | the bound over an iterable of batches: ``dataset_bits_per_dim`` |
| ``decoders``    | ``p(x | z_0)``: continuous Gaussian or 8-bit discretised       |
| ``time_sampling`` | stratified, importance-sampled times and the standard error  |
| ``jacobian``    | ``P`` and ``log |det P|`` of a basis                           |
"""

from __future__ import annotations

from nidiff.likelihood.bound import BitsPerDim, bits_per_dim, make_time_proposal
from nidiff.likelihood.dataset import DatasetBitsPerDim, dataset_bits_per_dim
from nidiff.likelihood.decoders import (
    DECODERS,
    Decoder,
    DiscretizedGaussianDecoder,
    GaussianDecoder,
    discretized_log_mass,
    log_bin_mass,
    resolve_decoder,
)
from nidiff.likelihood.jacobian import basis_matrix, log_abs_det
from nidiff.likelihood.time_sampling import ContinuousTime, DiscreteTime, paired_stderr, stratified_uniform

__all__ = [
    "DECODERS",
    "BitsPerDim",
    "ContinuousTime",
    "DatasetBitsPerDim",
    "Decoder",
    "DiscreteTime",
    "DiscretizedGaussianDecoder",
    "GaussianDecoder",
    "basis_matrix",
    "bits_per_dim",
    "dataset_bits_per_dim",
    "discretized_log_mass",
    "log_abs_det",
    "log_bin_mass",
    "make_time_proposal",
    "paired_stderr",
    "resolve_decoder",
    "stratified_uniform",
]
