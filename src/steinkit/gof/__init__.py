"""Goodness-of-fit tests: the learned Stein discrepancy test and kernel Stein baselines, one
registry of methods (:mod:`steinkit.gof.registry`) and one front end (:func:`gof_test`)."""

from .api import DEFAULT_METHOD, METHODS, GofResult, gof_test, gof_tests
from .fssd import fssd_test
from .kernels import median_bandwidth, stein_kernel_matrix
from .ksd import ksd_estimate, ksd_test, learn_ksd_bandwidth
from .ksdagg import ksdagg_test
from .lksd import learn_lksd_bandwidth, lksd_estimate, lksd_test
from .lsd import lsd_tests
from .outcome import TestOutcome, normal_sf
from .registry import GofMethod, describe_methods, get_method, register, registered, unregister
from .sequential import sequential_witness_test

__all__ = [
    "METHODS",
    "DEFAULT_METHOD",
    "GofMethod",
    "register",
    "unregister",
    "get_method",
    "registered",
    "describe_methods",
    "GofResult",
    "gof_test",
    "gof_tests",
    "lsd_tests",
    "ksd_test",
    "ksd_estimate",
    "learn_ksd_bandwidth",
    "lksd_test",
    "lksd_estimate",
    "learn_lksd_bandwidth",
    "fssd_test",
    "ksdagg_test",
    "sequential_witness_test",
    "TestOutcome",
    "normal_sf",
    "median_bandwidth",
    "stein_kernel_matrix",
]
