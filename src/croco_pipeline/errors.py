"""Errors a user can cause with bad input or configuration.

Each carries one message that names the file or parameter at fault and what was expected.
"""


class CrocoInputError(ValueError):
    """Bad input data: a missing or unreadable file, a raster without CRS, wrong bands, no overlap."""


class CrocoConfigError(ValueError):
    """A bad parameter value: names the parameter, the value given and what was expected."""


def bad_param(name: str, value: object, expected: str) -> CrocoConfigError:
    """Build the standard error for parameter ``name`` holding an invalid ``value``."""
    return CrocoConfigError(f"parameter '{name}' = {value!r} is invalid: expected {expected}")
