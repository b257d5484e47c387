"""Bases ``u = P^-1 x``: one class per module, each registered by name."""

from nidiff.bases.base import Basis, ImageShape, check_image_shape
from nidiff.bases.dct import DCTBasis
from nidiff.bases.fourier import FourierBasis
from nidiff.bases.haar import HaarBasis
from nidiff.bases.hartley import HartleyBasis
from nidiff.bases.identity import IdentityBasis
from nidiff.bases.matrix import MatrixBasis
from nidiff.bases.pca import PCABasis
from nidiff.bases.pca_separable import SeparablePCABasis
from nidiff.bases.whitened import WhitenedBasis

__all__ = [
    "Basis",
    "DCTBasis",
    "FourierBasis",
    "HaarBasis",
    "HartleyBasis",
    "IdentityBasis",
    "ImageShape",
    "MatrixBasis",
    "PCABasis",
    "SeparablePCABasis",
    "WhitenedBasis",
    "check_image_shape",
]
