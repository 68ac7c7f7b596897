"""The NumPy reference backend: what 2012 semantics means, one module per family of layers."""
