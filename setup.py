"""Build the Cython kernels of cext/ (every cext/_*.pyx is an extension).

Options (as uvloop/httptools do): --cython-always regenerates C even when it exists,
--cython-annotate writes HTML annotation next to each .pyx. HOTLINE_LINETRACE=1
compiles with line tracing for coverage/profiling (`make debug`).
"""

import glob
import os
import sys

import numpy
from setuptools import Extension, setup

ANNOTATE = "--cython-annotate" in sys.argv
ALWAYS = "--cython-always" in sys.argv
for flag in ("--cython-annotate", "--cython-always"):
    while flag in sys.argv:
        sys.argv.remove(flag)
LINETRACE = os.environ.get("HOTLINE_LINETRACE") == "1"


def extensions() -> list[Extension]:
    from Cython.Build import cythonize

    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    directives = {"language_level": "3", "boundscheck": False, "wraparound": False,
                  "cdivision": True, "initializedcheck": False}
    if LINETRACE:
        macros.append(("CYTHON_TRACE_NOGIL", "1"))
        directives["linetrace"] = True
    exts = []
    for pyx in sorted(glob.glob(os.path.join("cext", "_*.pyx"))):
        name = "cext." + os.path.splitext(os.path.basename(pyx))[0]
        exts.append(Extension(name, [pyx], include_dirs=[numpy.get_include()],
                              define_macros=macros, extra_compile_args=["-O3"]))
    return cythonize(exts, compiler_directives=directives, annotate=ANNOTATE, force=ALWAYS,
                     quiet=True)


setup(ext_modules=extensions())
