"""Optimisers that update a dict of parameter arrays in place, learning-rate
schedules, and gradient clipping.

SGD, Adagrad, Adam and AdamW follow ``torch.optim`` (2.x, default options)
step for step: given the same gradients they produce the same parameters, to
rounding.  An optimiser holds the very arrays of a ``name -> ndarray`` dict
(a model keeps references to them) and :meth:`Optimizer.step` updates them
in place from a gradient dict with the same keys, for example the one
:func:`rnncore.loss_and_grads` returns::

    opt = rnncore.optim.Adam(params, lr=1e-3)
    for x, targets in batches:
        loss, grads, h = rnncore.loss_and_grads(params, x, targets)
        rnncore.optim.clip_grad_norm(grads, 1.0)
        opt.step(grads)

Each step validates the gradients in Python, computes the step's scalars
(bias corrections, the decayed learning rate) as Python floats, and runs one
compiled loop per array with the GIL released, in the arrays' own precision.
State buffers are allocated once, at construction; a step allocates no
array.

Non-finite gradients are not checked for (as in ``torch.optim``): NaN and inf
propagate into the parameters.  :func:`clip_grad_norm` returns the gradients'
norm, so a training loop can skip a step whose norm is not finite.
"""
import math
from collections.abc import Mapping

import numpy as np

from rnncore import _optim
from rnncore._validation import (
    check_index,
    check_inplace_arrays,
    check_real,
)

__all__ = [
    "Optimizer",
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "StepLR",
    "CosineLR",
    "clip_grad_norm",
    "clip_grad_value",
]


def _pin(name, keys, arrays, dtype):
    """The arrays pinned for the kernels; arrays that share memory (one array
    under two keys, or overlapping views) would be updated twice."""
    pinned = _optim.Arrays(arrays, dtype == np.float64)
    shared = pinned.overlap()
    if shared is not None:
        a, b = (keys[i] for i in shared)
        raise ValueError(f"{name}[{a!r}] and {name}[{b!r}] share memory; each "
                         f"must be an array of its own")
    return pinned


# The flat state_dict's buffer entries, "state/<param key>/<buffer>": buffer
# names hold no "/", so each (parameter, buffer) pair has an entry of its own
# whatever "/" the parameter keys hold.
STATE_PREFIX = "state/"


def _buffer_key(key, buffer):
    return f"{STATE_PREFIX}{key}/{buffer}"


def _is_buffer_key(key):
    return isinstance(key, str) and key.startswith(STATE_PREFIX)


def _key_mismatch(given, expected):
    """What is wrong with the keys ``given`` against the list ``expected``,
    in words ("is missing the key(s) [...] and has unknown key(s) [...]")."""
    missing = [k for k in expected if k not in given]
    unknown = [k for k in given if k not in expected]
    problems = []
    if missing:
        problems.append(f"is missing the key(s) {missing}")
    if unknown:
        problems.append(f"has unknown key(s) {unknown}")
    return " and ".join(problems)


class Optimizer:
    """Base class of the optimisers: holds the parameters, the step count,
    the learning rate and its schedule, and the per-parameter state.

    Subclasses define ``_check_options`` (validated options as a dict),
    ``_buffers`` (the state buffers some options need, with their initial
    values) and ``_update`` (one step on the gradient list).

    Options other than ``lr`` are fixed at construction (or restored by
    :meth:`load_state_dict`). An optimiser is saved through
    :meth:`state_dict`, a flat dict that ``rnncore.save(model, file,
    optimizer=opt)`` stores in the model file, not pickled; it steps from
    one thread at a time (a concurrent second step raises RuntimeError).

    Attributes
    ----------
    lr : float
        The learning rate of the next step; settable (validated: finite,
        >= 0).
    schedule : callable or None
        ``schedule(step_count) -> lr``, called before each step with the
        number of steps taken so far (0 before the first), its result
        assigned to ``lr``; settable.  Like a ``torch.optim.lr_scheduler``
        stepped after every optimiser step: the first step uses
        ``schedule(0)``.
    """

    def __init__(self, params, lr, schedule, **options):
        keys, arrays, dtype = check_inplace_arrays("params", params)
        if not arrays:
            raise ValueError("params is empty; an optimiser needs at least one "
                             "array")
        self._keys = tuple(keys)
        self._key_set = frozenset(keys)
        self._arrays = arrays
        self._dtype = dtype
        self._pinned = _pin("params", keys, arrays, dtype)
        self._options = self._check_options(**options)
        self.lr = lr
        self.schedule = schedule
        self._step = 0
        self._state = {}
        self._pinned_state = {}
        self._allocate()

    # -- public attributes ---------------------------------------------------

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = check_real("lr", value, low=0.0)

    @property
    def schedule(self):
        return self._schedule

    @schedule.setter
    def schedule(self, value):
        if value is not None and not callable(value):
            raise TypeError(f"schedule must be callable or None, got "
                            f"{type(value).__name__}")
        self._schedule = value

    @property
    def step_count(self):
        """Number of steps taken."""
        return self._step

    @property
    def params(self):
        """The parameter arrays the optimiser updates (a new dict of the very
        arrays it was given)."""
        return dict(zip(self._keys, self._arrays, strict=True))

    @property
    def dtype(self):
        """The parameters' dtype."""
        return self._dtype

    def __repr__(self):
        options = ", ".join(f"{k}={v!r}" for k, v in self._options.items())
        return (f"{type(self).__name__}(lr={self._lr!r}, {options}; "
                f"{len(self._keys)} {self._dtype} arrays, step {self._step})")

    # -- stepping ------------------------------------------------------------

    def step(self, grads):
        """Update every parameter in place from its gradient.

        Parameters
        ----------
        grads : mapping
            A gradient per parameter: exactly the parameters' keys, each an
            array of its parameter's shape and dtype. Non-contiguous
            gradients are copied first; gradients are never modified.

        Raises
        ------
        ValueError
            Missing or unknown keys, a wrong shape, or an invalid learning
            rate from the schedule. Nothing is updated then.
        TypeError
            ``grads`` not a mapping, or a gradient of another dtype.
        RuntimeError
            Another thread is running a step of this optimiser.
        """
        grads = self._gather(grads)
        if self._schedule is not None:
            lr = self._schedule(self._step)
            self._lr = check_real(f"schedule({self._step}) (the learning rate)",
                                  lr, low=0.0)
        self._update(grads, self._step + 1)
        self._step += 1

    def _gather(self, grads):
        """The gradients as a list in parameter order, validated."""
        if not isinstance(grads, Mapping):
            raise TypeError(f"grads must be a mapping of names to arrays, got "
                            f"{type(grads).__name__}")
        if grads.keys() != self._key_set:
            raise ValueError(f"grads {_key_mismatch(grads, self._keys)}; expected the "
                             f"parameters' keys {list(self._keys)}")
        out = []
        for key, param in zip(self._keys, self._arrays, strict=True):
            grad = grads[key]
            if not (type(grad) is np.ndarray and grad.dtype == self._dtype
                    and grad.shape == param.shape and grad.flags.c_contiguous):
                grad = self._check_grad(key, grad, param)
            out.append(grad)
        return out

    def _check_grad(self, key, grad, param):
        where = f"grads[{key!r}]"
        if grad is None:
            raise TypeError(f"{where} must be an array, got None")
        grad = np.asarray(grad)
        if grad.dtype != self._dtype:
            raise TypeError(f"{where} has dtype {grad.dtype}, but the parameters "
                            f"have dtype {self._dtype}")
        if grad.shape != param.shape:
            raise ValueError(f"{where} has shape {grad.shape}, but params[{key!r}] "
                             f"has shape {param.shape}")
        return np.ascontiguousarray(grad)

    # -- state ---------------------------------------------------------------

    def _allocate(self):
        """Allocates the state buffers the options need (once; again only when
        a loaded state changes which buffers exist)."""
        wanted = self._buffers(self._options)
        if set(wanted) == set(self._state):
            return
        self._state = {name: [np.full_like(p, fill) for p in self._arrays]
                       for name, fill in wanted.items()}
        self._pinned_state = {
            name: _optim.Arrays(arrays, self._dtype == np.float64)
            for name, arrays in self._state.items()}

    def state_dict(self):
        """The optimiser's state as a flat dict of text, numbers and array
        copies: what :func:`rnncore.save` stores beside a model.

        Returns
        -------
        dict
            ``"optimizer"``: the class name (``"Adam"``, ...);
            ``"step"``: the step count (int); ``"lr"`` and every other option
            under its own name (floats and bools; ``betas`` as a float64
            array of two elements); ``"state/<param key>/<buffer>"``: a copy
            of each state buffer, in the parameters' dtype (for example
            ``"state/W_hy/exp_avg"``). The schedule is not included.
        """
        state = {"optimizer": type(self).__name__, "step": self._step, "lr": self._lr}
        # a pair (betas) as an array: a model file stores numbers, text and arrays
        state.update((name, np.array(value, np.float64) if isinstance(value, tuple)
                      else value) for name, value in self._options.items())
        for i, key in enumerate(self._keys):
            state.update((_buffer_key(key, name), bufs[i].copy())
                         for name, bufs in self._state.items())
        return state

    def load_state_dict(self, state_dict):
        """Restore a state from :meth:`state_dict` (directly, or as
        ``rnncore.load(file, return_optimizer_state=True)`` returns it); the
        next step then equals the one the saved optimiser would have taken.

        Restores the step count, the options (validated as by the
        constructor) and the state buffers, copied into this optimiser's
        buffers in its dtype. The schedule is kept.

        Raises
        ------
        ValueError, TypeError
            A malformed state, naming the entry: another optimiser class,
            missing or unknown entries (options, or buffers of other
            parameter keys), invalid options, buffers of the wrong shape or
            not of floats. Nothing is changed then.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping, got "
                            f"{type(state_dict).__name__}")
        name = type(self).__name__
        saved = state_dict.get("optimizer", name)  # if missing: reported below
        if not (isinstance(saved, str) and saved == name):
            raise ValueError(f"state_dict['optimizer'] is {saved!r}: the state of "
                             f"another optimiser, not of {name!r}")
        settings = ["optimizer", "step", "lr", *self._options]
        given = [k for k in state_dict if not _is_buffer_key(k)]
        if set(given) != set(settings):
            raise ValueError(f"state_dict {_key_mismatch(given, settings)}; a {name} "
                             f"state has the entries {settings} and the buffers "
                             f"'{STATE_PREFIX}<param key>/<buffer>'")
        step = check_index("state_dict['step']", state_dict["step"])
        if step < 0:
            raise ValueError(f"state_dict['step'] must be >= 0, got {step}")
        lr = check_real("state_dict['lr']", state_dict["lr"], low=0.0)
        try:
            options = self._check_options(**{k: state_dict[k] for k in self._options})
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"state_dict: {exc}") from None
        buffers = self._check_buffers(state_dict, options)

        self._options, self._lr, self._step = options, lr, step
        self._allocate()
        for bname, arrays in buffers.items():
            for dst, src in zip(self._state[bname], arrays, strict=True):
                np.copyto(dst, src, casting="same_kind")

    def _check_buffers(self, state_dict, options):
        """{buffer name: [array per parameter]} from a state dict's
        ``"state/..."`` entries: exactly the buffers ``options`` need."""
        names = list(self._buffers(options))
        expected = [_buffer_key(key, b) for key in self._keys for b in names]
        given = [k for k in state_dict if _is_buffer_key(k)]
        if set(given) != set(expected):
            raise ValueError(f"state_dict {_key_mismatch(given, expected)}; with "
                             f"these options every parameter has the buffers "
                             f"{names}")
        buffers = {b: [] for b in names}
        for key, param in zip(self._keys, self._arrays, strict=True):
            for b in names:
                where = f"state_dict[{_buffer_key(key, b)!r}]"
                arr = np.asarray(state_dict[_buffer_key(key, b)])
                if arr.dtype.kind != "f":
                    raise TypeError(f"{where} must be a float array, got dtype "
                                    f"{arr.dtype}")
                if arr.shape != param.shape:
                    raise ValueError(f"{where} has shape {arr.shape}, but "
                                     f"params[{key!r}] has shape {param.shape}")
                buffers[b].append(arr)
        return buffers

    # -- subclass interface --------------------------------------------------

    def _check_options(self, **options):  # pragma: no cover
        raise NotImplementedError

    def _buffers(self, options):  # pragma: no cover
        raise NotImplementedError

    def _update(self, grads, t):  # pragma: no cover
        raise NotImplementedError


def _non_negative(name, value):
    return check_real(name, value, low=0.0)


def _positive_int(name, value):
    value = check_index(name, value)
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum, as
    ``torch.optim.SGD``.

    For each parameter :math:`p` with gradient :math:`g`, at step
    :math:`t = 1, 2, \ldots`:

    .. math::

        d &= g + \lambda p \\
        b_t &= d \quad (t = 1), \qquad
        b_t = \mu b_{t-1} + (1 - \tau) d \quad (t > 1) \\
        d &= d + \mu b_t \ \text{(nesterov)} \quad\text{or}\quad d = b_t \\
        p &= p - \eta d

    with weight decay :math:`\lambda`, momentum :math:`\mu` (no buffer when
    :math:`\mu = 0`: then :math:`p = p - \eta d` directly), dampening
    :math:`\tau` and learning rate :math:`\eta`.

    Parameters
    ----------
    params : mapping of str to ndarray
        The arrays to update in place: C-contiguous, writeable, float32 or
        float64, all of one dtype, not sharing memory. They are never copied.
    lr : float
        Learning rate :math:`\eta \ge 0`.
    momentum : float, default 0
        :math:`\mu \ge 0`.
    dampening : float, default 0
        :math:`\tau`; not applied on the first step.
    nesterov : bool, default False
        Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
    weight_decay : float, default 0
        L2 penalty :math:`\lambda \ge 0`, added to the gradient.
    schedule : callable, optional
        ``schedule(step_count) -> lr``, see :class:`Optimizer`.

    Raises
    ------
    ValueError
        A negative or non-finite option, nesterov without momentum or with
        dampening, or invalid params (non-contiguous, read-only, empty,
        sharing memory).
    TypeError
        Params not a mapping of float arrays of one dtype; a non-numeric
        option.
    """

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0, *, schedule=None):
        super().__init__(params, lr, schedule, momentum=momentum,
                         dampening=dampening, nesterov=nesterov,
                         weight_decay=weight_decay)

    def _check_options(self, *, momentum, dampening, nesterov, weight_decay):
        momentum = _non_negative("momentum", momentum)
        dampening = check_real("dampening", dampening)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool, got {type(nesterov).__name__}")
        if nesterov and (momentum == 0 or dampening != 0):
            raise ValueError(f"nesterov=True needs momentum > 0 and dampening = 0, "
                             f"got momentum={momentum}, dampening={dampening}")
        return {"momentum": momentum, "dampening": dampening,
                "nesterov": bool(nesterov),
                "weight_decay": _non_negative("weight_decay", weight_decay)}

    def _buffers(self, options):
        return {"momentum_buffer": 0.0} if options["momentum"] != 0 else {}

    def _update(self, grads, t):
        o = self._options
        _optim.sgd(self._pinned, grads, self._pinned_state.get("momentum_buffer"),
                   -self._lr, o["weight_decay"], o["momentum"], 1 - o["dampening"],
                   t == 1, o["nesterov"])


class Adagrad(Optimizer):
    r"""Adagrad, as ``torch.optim.Adagrad``.

    For each parameter :math:`p` with gradient :math:`g`, at step
    :math:`t = 1, 2, \ldots`:

    .. math::

        d &= g + \lambda p \\
        \tilde\eta &= \eta / (1 + (t - 1) \delta) \\
        s &= s + d^2 \\
        p &= p - \tilde\eta \, d / (\sqrt{s} + \epsilon)

    with :math:`s` starting at ``initial_accumulator_value``.

    Parameters
    ----------
    params : mapping of str to ndarray
        As for :class:`SGD`.
    lr : float, default 1e-2
        Learning rate :math:`\eta \ge 0`.
    lr_decay : float, default 0
        :math:`\delta \ge 0`.
    weight_decay : float, default 0
        L2 penalty :math:`\lambda \ge 0`, added to the gradient.
    initial_accumulator_value : float, default 0
        Initial :math:`s \ge 0`.
    eps : float, default 1e-10
        :math:`\epsilon \ge 0`.
    schedule : callable, optional
        ``schedule(step_count) -> lr``, see :class:`Optimizer`.

    Raises
    ------
    ValueError, TypeError
        As for :class:`SGD`.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, *, schedule=None):
        super().__init__(params, lr, schedule, lr_decay=lr_decay,
                         weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value,
                         eps=eps)

    def _check_options(self, *, lr_decay, weight_decay, initial_accumulator_value,
                       eps):
        return {
            "lr_decay": _non_negative("lr_decay", lr_decay),
            "weight_decay": _non_negative("weight_decay", weight_decay),
            "initial_accumulator_value": _non_negative(
                "initial_accumulator_value", initial_accumulator_value),
            "eps": _non_negative("eps", eps),
        }

    def _buffers(self, options):
        return {"sum": options["initial_accumulator_value"]}

    def _update(self, grads, t):
        o = self._options
        clr = self._lr / (1 + (t - 1) * o["lr_decay"])
        _optim.adagrad(self._pinned, grads, self._pinned_state["sum"], -clr,
                       o["weight_decay"], o["eps"])


class Adam(Optimizer):
    r"""Adam, as ``torch.optim.Adam`` (weight decay as an L2 term added to
    the gradient).

    For each parameter :math:`p` with gradient :math:`g`, at step
    :math:`t = 1, 2, \ldots`:

    .. math::

        d &= g + \lambda p \\
        m &= \beta_1 m + (1 - \beta_1) d \\
        v &= \beta_2 v + (1 - \beta_2) d^2 \\
        p &= p - \frac{\eta}{1 - \beta_1^t} \,
             \frac{m}{\sqrt{v} / \sqrt{1 - \beta_2^t} + \epsilon}

    with :math:`m = v = 0` before the first step. (:math:`\epsilon` is added
    after the bias correction of :math:`\sqrt{v}`, as torch does.)

    Parameters
    ----------
    params : mapping of str to ndarray
        As for :class:`SGD`.
    lr : float, default 1e-3
        Learning rate :math:`\eta \ge 0`.
    betas : (float, float), default (0.9, 0.999)
        :math:`\beta_1, \beta_2 \in [0, 1)`.
    eps : float, default 1e-8
        :math:`\epsilon \ge 0`.
    weight_decay : float, default 0
        L2 penalty :math:`\lambda \ge 0`, added to the gradient (see
        :class:`AdamW` for decoupled weight decay).
    schedule : callable, optional
        ``schedule(step_count) -> lr``, see :class:`Optimizer`.

    Raises
    ------
    ValueError, TypeError
        As for :class:`SGD`; also betas outside [0, 1) or not a pair.
    """

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=0.0, *, schedule=None):
        super().__init__(params, lr, schedule, betas=betas, eps=eps,
                         weight_decay=weight_decay)

    def _check_options(self, *, betas, eps, weight_decay):
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise TypeError(f"betas must be a pair of numbers, got {betas!r}") from None
        return {
            "betas": (check_real("betas[0]", beta1, 0.0, 1.0, high_open=True),
                      check_real("betas[1]", beta2, 0.0, 1.0, high_open=True)),
            "eps": _non_negative("eps", eps),
            "weight_decay": _non_negative("weight_decay", weight_decay),
        }

    def _buffers(self, options):
        return {"exp_avg": 0.0, "exp_avg_sq": 0.0}

    def _update(self, grads, t):
        o = self._options
        beta1, beta2 = o["betas"]
        lr, wd = self._lr, o["weight_decay"]
        # η/(1-β₁ᵗ) · m / (√v/√(1-β₂ᵗ) + ε) with numerator and denominator
        # multiplied by √(1-β₂ᵗ): one division per element instead of two.
        bc2_sqrt = (1 - beta2 ** t) ** 0.5
        step_size = lr / (1 - beta1 ** t) * bc2_sqrt
        if self._decoupled:
            decay, l2 = 1 - lr * wd, 0.0
        else:
            decay, l2 = 1.0, wd
        _optim.adam(self._pinned, grads, self._pinned_state["exp_avg"],
                    self._pinned_state["exp_avg_sq"], decay, l2, 1 - beta1, beta2,
                    1 - beta2, -step_size, o["eps"] * bc2_sqrt)


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay, as ``torch.optim.AdamW``.

    As :class:`Adam` with :math:`d = g`, except that each step first shrinks
    the parameter:

    .. math::

        p = (1 - \eta \lambda) p

    and then applies the Adam update to it.

    Parameters
    ----------
    params : mapping of str to ndarray
        As for :class:`SGD`.
    lr : float, default 1e-3
        Learning rate :math:`\eta \ge 0`.
    betas : (float, float), default (0.9, 0.999)
        :math:`\beta_1, \beta_2 \in [0, 1)`.
    eps : float, default 1e-8
        :math:`\epsilon \ge 0`.
    weight_decay : float, default 1e-2
        Decoupled weight decay :math:`\lambda \ge 0`.
    schedule : callable, optional
        ``schedule(step_count) -> lr``, see :class:`Optimizer`.

    Raises
    ------
    ValueError, TypeError
        As for :class:`Adam`.
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=1e-2, *, schedule=None):
        super().__init__(params, lr, betas, eps, weight_decay, schedule=schedule)


# ---- learning-rate schedules ----------------------------------------------

class StepLR:
    r"""Step decay: ``schedule(t) = lr * gamma ** (t // step_size)``.

    The learning rate of step ``t`` (counting from 0) as
    ``torch.optim.lr_scheduler.StepLR`` gives it when stepped once per
    optimiser step.

    Parameters
    ----------
    lr : float
        Initial learning rate, >= 0.
    step_size : int
        Steps between decays, >= 1.
    gamma : float, default 0.1
        Factor per decay, >= 0.
    """

    def __init__(self, lr, step_size, gamma=0.1):
        self.lr = _non_negative("lr", lr)
        self.step_size = _positive_int("step_size", step_size)
        self.gamma = _non_negative("gamma", gamma)

    def __call__(self, step):
        return self.lr * self.gamma ** (step // self.step_size)

    def __repr__(self):
        return (f"StepLR(lr={self.lr!r}, step_size={self.step_size}, "
                f"gamma={self.gamma!r})")


class CosineLR:
    r"""Cosine annealing from ``lr`` to ``min_lr`` over ``total_steps`` steps.

    .. math::

        \eta_t = \eta_{min} + (\eta - \eta_{min})
                 \frac{1 + \cos(\pi t / T)}{2} \quad (t \le T), \qquad
        \eta_t = \eta_{min} \quad (t > T)

    For ``t <= total_steps`` this is ``torch.optim.lr_scheduler.
    CosineAnnealingLR`` stepped once per optimiser step; past it the rate
    stays at ``min_lr`` (torch's would rise again).

    Parameters
    ----------
    lr : float
        Initial learning rate, >= 0.
    total_steps : int
        :math:`T \ge 1`.
    min_lr : float, default 0
        Final learning rate, >= 0.
    """

    def __init__(self, lr, total_steps, min_lr=0.0):
        self.lr = _non_negative("lr", lr)
        self.total_steps = _positive_int("total_steps", total_steps)
        self.min_lr = _non_negative("min_lr", min_lr)

    def __call__(self, step):
        t = min(step, self.total_steps)
        cos = (1 + math.cos(math.pi * t / self.total_steps)) / 2
        return self.min_lr + (self.lr - self.min_lr) * cos

    def __repr__(self):
        return (f"CosineLR(lr={self.lr!r}, total_steps={self.total_steps}, "
                f"min_lr={self.min_lr!r})")


# ---- gradient clipping ----------------------------------------------------

def clip_grad_norm(grads, max_norm, norm_type=2.0, error_if_nonfinite=False):
    r"""Scale all gradients in place so that their joint norm is at most
    ``max_norm``, as ``torch.nn.utils.clip_grad_norm_``.

    With :math:`N = \lVert (g_1, \ldots, g_k) \rVert_p`, the norm of all
    gradients' elements taken together (:math:`p = \infty`: the largest
    :math:`|g|`): if :math:`c = \text{max\_norm} / (N + 10^{-6}) < 1`, every
    gradient is multiplied by :math:`c`; otherwise nothing changes.

    The norm is accumulated in double precision; the factor is rounded to
    the gradients' dtype.

    Parameters
    ----------
    grads : mapping of str to ndarray
        Gradients, modified in place: C-contiguous, writeable, float32 or
        float64, all of one dtype, not sharing memory.
    max_norm : float
        >= 0 (inf: never clip).
    norm_type : float, default 2.0
        :math:`p > 0`, or ``inf``.
    error_if_nonfinite : bool, default False
        If True, a NaN or infinite norm raises ValueError.

    Returns
    -------
    float
        The norm :math:`N` before clipping (0.0 for no gradients). If it is
        NaN or infinite the gradients are left unchanged (torch would fill
        them with NaN); a training loop can check ``math.isfinite`` and skip
        the step.

    Raises
    ------
    ValueError
        Negative or NaN ``max_norm``, ``norm_type`` not > 0, non-contiguous
        or read-only gradients, gradients sharing memory, a non-finite norm
        with ``error_if_nonfinite``.
    TypeError
        Not a mapping of float arrays of one dtype.
    """
    max_norm = check_real("max_norm", max_norm, low=0.0, finite=False)
    p = check_real("norm_type", norm_type, low=0.0, low_open=True, finite=False)
    keys, arrays, dtype = check_inplace_arrays("grads", grads)
    if not arrays:
        return 0.0
    pinned = _pin("grads", keys, arrays, dtype)
    total = _optim.pow_sum(pinned, p)
    if p == 2:
        total = math.sqrt(total)
    elif p != 1 and p != math.inf:
        total = total ** (1 / p)
    if not math.isfinite(total):
        if error_if_nonfinite:
            raise ValueError(f"the total {p:g}-norm of the gradients is {total}; "
                             f"they were left unchanged")
        return total
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        _optim.scale(pinned, coef)
    return total


def clip_grad_value(grads, clip_value):
    """Clamp every gradient element in place to ``[-clip_value, clip_value]``,
    as ``torch.nn.utils.clip_grad_value_``. NaN stays NaN.

    Parameters
    ----------
    grads : mapping of str to ndarray
        Gradients, modified in place: as for :func:`clip_grad_norm`.
    clip_value : float
        >= 0 (inf: no clamping).

    Raises
    ------
    ValueError
        Negative or NaN ``clip_value``; gradients as for
        :func:`clip_grad_norm`.
    TypeError
        Not a mapping of float arrays of one dtype.
    """
    clip_value = check_real("clip_value", clip_value, low=0.0, finite=False)
    keys, arrays, dtype = check_inplace_arrays("grads", grads)
    if arrays:
        _optim.clamp(_pin("grads", keys, arrays, dtype), -clip_value, clip_value)
