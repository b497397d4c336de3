"""patcode-local: a GGUF model run inside PatCode by llama-cpp-python, the last resort that answers offline.

The hooks are in :mod:`patcode_local.hooks` (the entry point); nothing is imported here, so listing
providers stays cheap.
"""
