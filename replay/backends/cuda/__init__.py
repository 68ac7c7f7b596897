"""The CUDA backend: hand-written kernels (kernels/*.cu) launched through a module object with cupy's calling
style — `cupy.RawModule` on a GPU, or on the CPU the emulator (emulator/, g++ against cuda_emu.h) — and compiled
for the GPU with NVRTC (nvrtc.py). Importing this package imports neither cupy nor NumPy."""
