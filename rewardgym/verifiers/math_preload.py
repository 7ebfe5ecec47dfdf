"""Imported by the math pool's fork server (its ``preload``, which can only import modules), and
by a math worker's initializer where there is no fork server: importing it warms the process
(``math_warm.warm_up``) once. Kept apart from ``math_warm`` so that importing the warm-up's
definitions elsewhere has no side effects."""

from .math_warm import warm_up

warm_up()
