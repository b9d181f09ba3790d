"""Core building blocks shared by every format and command: the model, box conversion, errors and safe I/O."""
