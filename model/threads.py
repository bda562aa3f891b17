"""torch's thread count. It is process-wide, so the entry points set it (each CLI command, the
engine process, each benchmark), never a library such as the engine. One thread by default: on a
shared two-core machine two threads were measured slower than one."""

DEFAULT_THREADS = 1


def set_threads(threads: int = DEFAULT_THREADS) -> None:
    import torch

    torch.set_num_threads(threads)
