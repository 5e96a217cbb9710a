"""Build script: the optional C fast path of the OKX normaliser (``marketfeed_okx._cokx``).

Everything else about the distribution is declared in ``pyproject.toml``. The extension is
``optional``: without a C compiler (or Python headers) the install still succeeds and the
normaliser runs its pure-Python path (``marketfeed_okx.SPEEDUPS`` is then ``False``).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "marketfeed_okx._cokx",
            sources=["src/marketfeed_okx/_cokx.c"],
            optional=True,
        )
    ]
)
