"""Backends by name: "numpy" (the 2012 reference, CPU) and, later, "cuda" (CuPy kernels)."""
