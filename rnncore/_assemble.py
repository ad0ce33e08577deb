"""Models whose parameters come from or go elsewhere (a file, PyTorch)."""
from rnncore import model as _model


def blank_model(config):
    """An ``RNN`` built from ``config`` (checked by its constructor) with an
    empty ``params`` dict for the caller to fill.

    The random initialisation is skipped: the parameters are about to be
    replaced, and drawing them (or, for ``recurrent_init="orthogonal"``,
    factorising an H×H matrix per layer) would cost as much as the load.
    Nothing is allocated, so a huge declared size is harmless here.
    """
    model = _model.RNN.__new__(_model.RNN)
    # an instance attribute shadows the method for the constructor's one call
    model._init_params = lambda rng: {}
    try:
        model.__init__(**config)
    finally:
        del model._init_params
    return model


def check_model(model):
    """``model`` is an RNN whose parameters still have their shapes and
    dtype (users may replace them), so that what is exported loads back."""
    if not isinstance(model, _model.RNN):
        raise TypeError(f"model must be an rnncore.RNN, got {type(model).__name__}")
    model._check_params()
