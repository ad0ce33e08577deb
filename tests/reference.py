"""Plain NumPy reference for the Elman RNN used to check rnncore.

Everything here is written straight from the equations with explicit Python
loops over sequences and time steps.  It is slow on purpose: the aim is to be
obviously correct, not fast.  All arithmetic is carried out in float64
regardless of the input dtype.

Conventions (time-major, PyTorch weight layout):
    x      (T, B, D)
    W_xh   (H, D)
    W_hh   (H, H)
    b_h    (H,)
    W_hy   (C, H)
    b_y    (C,)
    h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h),  h_{-1} = h0 (zeros if None)
    y_t = W_hy h_t + b_y
With ``lengths`` (B,), sequence b only runs for steps t < lengths[b]; the
remaining outputs are zero, take no loss and receive no gradient.
"""

import numpy as np

PARAM_KEYS = ("W_xh", "W_hh", "b_h", "W_hy", "b_y")


def _f64(a):
    return None if a is None else np.array(a, dtype=np.float64)


def _lengths(lengths, T, B):
    if lengths is None:
        return [T] * B
    return [int(v) for v in np.asarray(lengths).reshape(B)]


def forward(x, W_xh, W_hh, b_h, h0=None, lengths=None):
    """Return hs (T, B, H) in float64."""
    x, W_xh, W_hh, b_h, h0 = map(_f64, (x, W_xh, W_hh, b_h, h0))
    T, B, D = x.shape
    H = W_hh.shape[0]
    lens = _lengths(lengths, T, B)
    hs = np.zeros((T, B, H))
    for b in range(B):
        h = np.zeros(H) if h0 is None else h0[b].copy()
        for t in range(lens[b]):
            pre = np.zeros(H)
            for i in range(H):
                acc = b_h[i]
                for d in range(D):
                    acc += W_xh[i, d] * x[t, b, d]
                for j in range(H):
                    acc += W_hh[i, j] * h[j]
                pre[i] = acc
            h = np.tanh(pre)
            hs[t, b] = h
    return hs


def last_states(hs, h0=None, lengths=None):
    """State of each sequence after its last valid step: hs[lengths[b]-1, b]."""
    T, B, H = hs.shape
    lens = _lengths(lengths, T, B)
    out = np.zeros((B, H))
    for b in range(B):
        out[b] = hs[lens[b] - 1, b]
    return out


def output_layer(hs, W_hy, b_y):
    """Return W_hy h + b_y for every state h along the last axis of hs."""
    hs, W_hy, b_y = map(_f64, (hs, W_hy, b_y))
    C, H = W_hy.shape
    rows = hs.reshape(int(np.prod(hs.shape[:-1])), H)
    out = np.zeros((len(rows), C))
    for n, h in enumerate(rows):
        for c in range(C):
            acc = b_y[c]
            for j in range(H):
                acc += W_hy[c, j] * h[j]
            out[n, c] = acc
    return out.reshape(*hs.shape[:-1], C)


def backward(dhs, hs, x, W_xh, W_hh, h0=None, lengths=None, dh_last=None):
    """Back-propagation through time, one sequence and one step at a time.

    Returns a dict with dx, dh0, dW_xh, dW_hh, db_h (float64).
    """
    x, W_xh, W_hh, h0, hs = map(_f64, (x, W_xh, W_hh, h0, hs))
    T, B, D = x.shape
    H = W_hh.shape[0]
    dhs = np.zeros((T, B, H)) if dhs is None else _f64(dhs)
    dh_last = np.zeros((B, H)) if dh_last is None else _f64(dh_last)
    lens = _lengths(lengths, T, B)

    dx = np.zeros((T, B, D))
    dh0 = np.zeros((B, H))
    dW_xh = np.zeros((H, D))
    dW_hh = np.zeros((H, H))
    db_h = np.zeros(H)
    for b in range(B):
        carry = dh_last[b].copy()  # dL/dh_t arriving from later steps
        for t in range(lens[b] - 1, -1, -1):
            if t > 0:
                h_prev = hs[t - 1, b]
            elif h0 is not None:
                h_prev = h0[b]
            else:
                h_prev = np.zeros(H)
            dh = dhs[t, b] + carry
            da = dh * (1.0 - hs[t, b] ** 2)  # through tanh
            for i in range(H):
                db_h[i] += da[i]
                for d in range(D):
                    dW_xh[i, d] += da[i] * x[t, b, d]
                for j in range(H):
                    dW_hh[i, j] += da[i] * h_prev[j]
            for d in range(D):
                dx[t, b, d] = sum(W_xh[i, d] * da[i] for i in range(H))
            carry = np.array([sum(W_hh[i, j] * da[i] for i in range(H))
                              for j in range(H)])
        dh0[b] = carry
    return dict(dx=dx, dh0=dh0, dW_xh=dW_xh, dW_hh=dW_hh, db_h=db_h)


def log_softmax_1d(z):
    z = np.asarray(z, dtype=np.float64)
    m = np.max(z)
    return z - m - np.log(np.sum(np.exp(z - m)))


def log_softmax(x, axis=-1):
    """Row-by-row log-softmax along ``axis`` (float64)."""
    x = np.asarray(x, dtype=np.float64)
    moved = np.moveaxis(x, axis, -1)
    out = np.empty_like(moved)
    for idx in np.ndindex(moved.shape[:-1]):
        out[idx] = log_softmax_1d(moved[idx])
    return np.moveaxis(out, -1, axis)


def softmax(x, axis=-1):
    return np.exp(log_softmax(x, axis))


def cross_entropy(logits, targets, ignore_index=-100):
    """Mean softmax cross-entropy over non-ignored rows, and its gradient."""
    logits = np.asarray(logits, dtype=np.float64)
    N, C = logits.shape
    targets = [int(v) for v in np.asarray(targets).reshape(N)]
    valid = [n for n in range(N) if targets[n] != ignore_index]
    dlogits = np.zeros((N, C))
    if not valid:
        return 0.0, dlogits
    total = 0.0
    for n in valid:
        lp = log_softmax_1d(logits[n])
        total -= lp[targets[n]]
        g = np.exp(lp)
        g[targets[n]] -= 1.0
        dlogits[n] = g
    return total / len(valid), dlogits / len(valid)


def loss_and_grads(params, x, targets, mode="seq", h0=None, lengths=None,
                   ignore_index=-100):
    """Full forward/backward of RNN + linear read-out + cross-entropy.

    Returns (loss, grads, h_last, extra) where grads has the five parameter
    keys and extra holds dx and dh0 (gradients w.r.t. the inputs).
    """
    p = {k: _f64(params[k]) for k in PARAM_KEYS}
    x = _f64(x)
    T, B, _D = x.shape
    H = p["W_hh"].shape[0]
    C = p["W_hy"].shape[0]
    lens = _lengths(lengths, T, B)
    targets = np.asarray(targets)

    hs = forward(x, p["W_xh"], p["W_hh"], p["b_h"], h0, lengths)
    h_last = last_states(hs, h0, lengths)

    # collect the (state, target, where-to-send-the-gradient) triples
    rows = []
    if mode == "seq":
        for b in range(B):
            for t in range(lens[b]):
                if int(targets[t, b]) != ignore_index:
                    rows.append((hs[t, b], int(targets[t, b]), ("seq", t, b)))
    elif mode == "last":
        for b in range(B):
            if int(targets[b]) != ignore_index:
                rows.append((h_last[b], int(targets[b]), ("last", b)))
    else:
        raise ValueError(mode)

    dW_hy = np.zeros((C, H))
    db_y = np.zeros(C)
    dhs = np.zeros((T, B, H))
    dh_last = np.zeros((B, H))
    loss = 0.0
    n = len(rows)
    for h, tgt, where in rows:
        logits = p["W_hy"] @ h + p["b_y"]
        lp = log_softmax_1d(logits)
        loss -= lp[tgt] / n
        dy = np.exp(lp)
        dy[tgt] -= 1.0
        dy /= n
        dW_hy += np.outer(dy, h)
        db_y += dy
        dh = p["W_hy"].T @ dy
        if where[0] == "seq":
            dhs[where[1], where[2]] += dh
        else:
            dh_last[where[1]] += dh

    g = backward(dhs, hs, x, p["W_xh"], p["W_hh"], h0, lengths, dh_last)
    grads = dict(W_xh=g["dW_xh"], W_hh=g["dW_hh"], b_h=g["db_h"],
                 W_hy=dW_hy, b_y=db_y)
    return loss, grads, h_last, dict(dx=g["dx"], dh0=g["dh0"], hs=hs)


def loss_only(params, x, targets, mode="seq", h0=None, lengths=None,
              ignore_index=-100):
    """Loss computed by the forward pass only (no gradient code involved)."""
    p = {k: _f64(params[k]) for k in PARAM_KEYS}
    x = _f64(x)
    T, B, _ = x.shape
    lens = _lengths(lengths, T, B)
    hs = forward(x, p["W_xh"], p["W_hh"], p["b_h"], h0, lengths)
    targets = np.asarray(targets)
    terms = []
    if mode == "seq":
        for b in range(B):
            for t in range(lens[b]):
                if int(targets[t, b]) != ignore_index:
                    lp = log_softmax_1d(p["W_hy"] @ hs[t, b] + p["b_y"])
                    terms.append(-lp[int(targets[t, b])])
    else:
        hl = last_states(hs, h0, lengths)
        for b in range(B):
            if int(targets[b]) != ignore_index:
                lp = log_softmax_1d(p["W_hy"] @ hl[b] + p["b_y"])
                terms.append(-lp[int(targets[b])])
    return float(np.mean(terms)) if terms else 0.0


def _reverse_within(a, lengths):
    """a (T, B, ...) with each sequence reversed within its length."""
    T, B = a.shape[:2]
    out = np.array(a, dtype=np.float64)
    for b in range(B):
        n = T if lengths is None else int(lengths[b])
        out[:n, b] = a[:n, b][::-1]
    return out


def stacked(params, x, num_layers, bidirectional, h0=None, lengths=None):
    """Top-layer states (T, B, dirs·H) and final states h_n (layers·dirs, B, H)
    of a stacked, optionally bidirectional model (keys W_xh_l{k}[_reverse],
    ...), the reverse direction reading each sequence backwards."""
    nd = 2 if bidirectional else 1
    inp, h_n = _f64(x), []
    for k in range(num_layers):
        outs = []
        for d in range(nd):
            s = f"_l{k}" + ("_reverse" if d else "")
            xin = inp if d == 0 else _reverse_within(inp, lengths)
            init = None if h0 is None else h0[k * nd + d]
            hs = forward(xin, params["W_xh" + s], params["W_hh" + s],
                         params["b_h" + s], init, lengths)
            h_n.append(last_states(hs, init, lengths))
            outs.append(hs if d == 0 else _reverse_within(hs, lengths))
        inp = np.concatenate(outs, axis=2)
    return inp, np.stack(h_n)


def stacked_loss(params, x, targets, num_layers, bidirectional, mode="seq",
                 h0=None, lengths=None, ignore_index=-100):
    """Mean cross-entropy of the stacked model's output layer."""
    top, h_n = stacked(params, x, num_layers, bidirectional, h0, lengths)
    nd = 2 if bidirectional else 1
    W_hy, b_y = _f64(params["W_hy"]), _f64(params["b_y"])
    if mode == "seq":
        T, B = top.shape[:2]
        targets = np.array(targets).copy()
        if lengths is not None:
            targets[np.arange(T)[:, None] >= np.asarray(lengths)[None, :]] = \
                ignore_index
        logits = top.reshape(T * B, -1) @ W_hy.T + b_y
        return cross_entropy(logits, targets.reshape(-1), ignore_index)[0]
    feats = np.concatenate(list(h_n[-nd:]), axis=1)
    return cross_entropy(feats @ W_hy.T + b_y, targets, ignore_index)[0]


def stacked_loss_and_grads(params, x, targets, num_layers, bidirectional,
                           mode="seq", h0=None, lengths=None, ignore_index=-100):
    """loss_and_grads of the stacked, optionally bidirectional model of
    ``stacked``: (loss, grads keyed like its params, h_n), composed from the
    single-layer ``forward`` and ``backward`` above."""
    nd = 2 if bidirectional else 1
    W_hy, b_y = _f64(params["W_hy"]), _f64(params["b_y"])
    H = W_hy.shape[1] // nd
    # forward, keeping each direction's input and states in its reading order
    inp, runs = _f64(x), []
    for k in range(num_layers):
        layer, outs = [], []
        for d in range(nd):
            s = f"_l{k}" + ("_reverse" if d else "")
            xin = inp if d == 0 else _reverse_within(inp, lengths)
            init = None if h0 is None else h0[k * nd + d]
            hs = forward(xin, params["W_xh" + s], params["W_hh" + s],
                         params["b_h" + s], init, lengths)
            layer.append((s, xin, hs, init))
            outs.append(hs if d == 0 else _reverse_within(hs, lengths))
        runs.append(layer)
        inp = np.concatenate(outs, axis=2)
    T, B = inp.shape[:2]
    h_n = np.stack([last_states(hs, init, lengths)
                    for layer in runs for _, _, hs, init in layer])

    # output layer (targets as int64: ignore_index need not fit their dtype)
    targets = np.array(targets, dtype=np.int64)
    if mode == "seq":
        if lengths is not None:
            targets[np.arange(T)[:, None] >= np.asarray(lengths)[None, :]] = \
                ignore_index
        feats = inp.reshape(T * B, nd * H)
    else:
        feats = np.concatenate(list(h_n[-nd:]), axis=1)
    loss, dlogits = cross_entropy(feats @ W_hy.T + b_y, targets.reshape(-1),
                                  ignore_index)
    grads = {"W_hy": dlogits.T @ feats, "b_y": dlogits.sum(axis=0)}
    dfeats = dlogits @ W_hy

    # backward, top layer first; upstream is dL/d(layer output) (T, B, nd·H)
    upstream = dfeats.reshape(T, B, nd * H) if mode == "seq" else None
    for k in range(num_layers - 1, -1, -1):
        below = 0.0
        for d, (s, xin, hs, init) in enumerate(runs[k]):
            cols = slice(d * H, (d + 1) * H)
            if upstream is None:  # top layer, mode "last"
                dhs, dh_last = None, dfeats[:, cols]
            else:
                dhs = upstream[:, :, cols]
                dhs = dhs if d == 0 else _reverse_within(dhs, lengths)
                dh_last = None
            g = backward(dhs, hs, xin, params["W_xh" + s], params["W_hh" + s],
                         init, lengths, dh_last)
            grads["W_xh" + s] = g["dW_xh"]
            grads["W_hh" + s] = g["dW_hh"]
            grads["b_h" + s] = g["db_h"]
            below = below + (g["dx"] if d == 0
                             else _reverse_within(g["dx"], lengths))
        upstream = below
    return loss, grads, h_n
