"""Build script: the optional C fast path of the Upbit normaliser (``marketfeed_upbit._cupbit``).

Everything else about the distribution is declared in ``pyproject.toml``. The extension is
``optional``: without a C compiler (or Python headers) the install still succeeds and the
normaliser runs its pure-Python path (``marketfeed_upbit.SPEEDUPS`` is then ``False``).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "marketfeed_upbit._cupbit",
            sources=["src/marketfeed_upbit/_cupbit.c"],
            optional=True,
        )
    ]
)
