"""The one compiled part: ``datatools.formats._voc_scan``, the regular VOC document read in C (see its header).

It is optional: without a C compiler the build goes on without it, and ``formats.voc`` reads every document with
lxml (the same results, about 4x slower per file). Everything else about the package is in pyproject.toml.
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("datatools.formats._voc_scan", ["datatools/formats/_voc_scan.c"], optional=True,
                             extra_compile_args=["-O2"])])
