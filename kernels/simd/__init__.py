"""Direct convolution in SIMD registers, shared by the numba and cython backends.

``direct_conv.h`` holds the inner loops (AVX-512, AVX2 or portable C, chosen when
``setup.py`` compiles it for this machine); ``_direct.pyx`` the drivers (layouts, shares,
OpenMP threads); ``conv.py`` the strategy interface the backends' rules dispatch to, as
strategy ``"simd"``. If the extension was not built (no C compiler), the backends simply
do not offer the strategy: ``conv.available()`` says so.
"""
