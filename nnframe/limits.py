"""Upper bounds on the counts a config may give.

Each count reaches numpy shapes and TensorBoard's HParams (int64): an integer
beyond them passed validation and then failed deep inside the build or the
logger, with a traceback (``warmup_steps: 99999999999999999999999``).
"""

MAX_COUNT = 2**31 - 1
"""Steps, epochs, sizes and widths."""
MAX_SEED = 2**63 - 1
"""Seeds go to numpy's SeedSequence, which takes any size; TensorBoard's HParams store int64."""
