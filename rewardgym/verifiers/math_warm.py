"""Imported only by the math pool's fork server (its ``preload``): runs one check so that
math-verify's LaTeX parser is built once there and every forked worker starts warm. A
replacement for a killed worker is then ready in milliseconds instead of a fraction of a second.
A failure here must not take the fork server down, so it is ignored (workers then warm up in
their initializer)."""

import contextlib
import logging

from .math import judge

logging.getLogger("math_verify").setLevel(logging.ERROR)
with contextlib.suppress(Exception):
    judge("\\frac{1}{2}", "0.5")
