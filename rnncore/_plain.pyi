# Checks of the common call (see rnncore/_plain.pyx): dimensions, or None
# when the arguments need the full checks of rnncore._validation.
def plain_recurrence_dims(
    x: object, W_xh: object, W_hh: object, b_h: object
) -> tuple[int, int, int, int] | None: ...
def plain_train_dims(
    x: object,
    W_xh: object,
    W_hh: object,
    b_h: object,
    W_hy: object,
    b_y: object,
    targets: object,
    seq: bool,
) -> tuple[int, int, int, int, int] | None: ...
def plain_output_dims(
    hs: object, W_hy: object, b_y: object
) -> tuple[int, int, int] | None: ...
