"""HTTP clients of the service: a small Python API, a command line, and a live webcam overlay.

Torch-free and model-free: they only speak HTTP and draw with `vision.draw`.
"""
