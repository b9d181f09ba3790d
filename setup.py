"""The compiled parts, both optional (see each file's header):

- ``datatools.formats._voc_scan``: the regular VOC document read in C; without it lxml reads every document.
- ``datatools.ops._histogram``: pixel counts of a decoded image read in place; without it PIL's histogram() counts.

Without a C compiler the build goes on without them, with the same results, only slower. Everything else about the
package is in pyproject.toml.
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension(name, [source], optional=True, extra_compile_args=["-O2"])
                   for name, source in [("datatools.formats._voc_scan", "datatools/formats/_voc_scan.c"),
                                        ("datatools.ops._histogram", "datatools/ops/_histogram.c")]])
