"""The scratch layouts of the C target's convolution loops (templates/c/conv_ops.c.j2), as
constants.

Two paths, chosen when the C file is compiled:

- direct loops (the default): a convolution of stride 1 copies one sample's input into a
  zero-bordered buffer whose rows are ``WP`` wide, then accumulates each output channel over
  "wide rows": position ``q = oh * WP + ow`` of the output reads position ``q + kh·DH·WP + kw·DW``
  of the buffer, so every kernel tap is one contiguous loop over ``L = (OH - 1)·WP + OW``
  positions (rounded up to ``LB``) with no padding test (gcc vectorizes it; the columns
  ``ow >= OW`` are dropped when the rows are copied out). ∂E/∂x is the same loop: a stride-1
  convolution of δ with the flipped kernel, padded by ``(K - 1)·D - pad`` (``flip``). ∂E/∂W
  (``taps``) reads the padded input of any stride with δ transposed, its innermost loop over the
  output channels. Other ops keep the row-by-row loops (``wide`` None, ``taps`` False).
- ``NAME_BLAS``: im2col of the padded buffer (any stride), then one cblas gemm per group.
"""

from __future__ import annotations

VEC = 8  # the wide loops run over L rounded up to a multiple of VEC: no scalar remainder
MIN_LANES = 4  # ∂E/∂W runs its innermost loop over the OPG output channels when that many


def _padded(ci, ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw) -> dict:
    """A zero-bordered copy of an input [ci][ih][iw]: buffer row i holds input row i - ph (and
    column j column j - pw), HP x WP big enough for every read of the output oh x ow."""
    hp, wp = (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1
    h0, h1, w0, w1 = max(0, -ph), min(ih, hp - ph), max(0, -pw), min(iw, wp - pw)
    if h1 <= h0 or w1 <= w0:  # only padding is read
        h1, w1 = h0, w0 + 1
    return {
        "HP": hp, "WP": wp, "PAD": ci * hp * wp, "PH": ph, "PW": pw, "IH": ih, "IW": iw,
        "h0": h0, "h1": h1, "w0": w0, "w1": w1,
    }  # fmt: skip


def layout(kind: str, c: dict) -> dict:
    """Buffers and loop sizes of one convolution op (c: its ``_conv_dims``): ``pad`` (the input's
    padded copy, any stride: BLAS's im2col reads it), ``wide`` (the direct stride-1 loops), the
    scratch it needs in ``convbuf`` and, for BLAS, in ``convcols``."""
    g = c["C"], c["H"], c["W"], c["OH"], c["OW"], c["KH"], c["KW"], c["SH"], c["SW"]
    ci, ih, iw, oh, ow, kh, kw, sh, sw = g
    dh, dw, ph, pw = c["DH"], c["DW"], c["PH"], c["PW"]
    pad = _padded(ci, ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw)
    pad["COLS"] = c["CPG"] * kh * kw * oh * ow  # one group's im2col matrix
    wide = None
    if sh == sw == 1:
        if kind == "conv_grad_input":  # δ [O][OH][OW] through the flipped kernel to [C][H][W]
            fh, fw = (kh - 1) * dh - ph, (kw - 1) * dw - pw
            wide = {"CI": c["O"], "CO": ci, "OH": ih, "OW": iw,
                    "CPG": c["OPG"], "OPG": c["CPG"], "flip": True,
                    **_padded(c["O"], oh, ow, ih, iw, kh, kw, 1, 1, dh, dw, fh, fw)}  # fmt: skip
        else:
            wide = {"CI": ci, "CO": c["O"], "OH": oh, "OW": ow,
                    "CPG": c["CPG"], "OPG": c["OPG"], "flip": False, **pad}  # fmt: skip
        wide["L"] = (wide["OH"] - 1) * wide["WP"] + wide["OW"]
        wide["LB"] = -(-wide["L"] // VEC) * VEC
        wide["ROWS"] = max(wide["OH"] * wide["WP"], wide["LB"])  # one output channel, wide
        wide["PAD"] += wide["LB"] - wide["L"]  # the reads past L
    direct = wide["PAD"] + wide["ROWS"] if wide else 0
    # ∂E/∂W with the output channels innermost (δ transposed, the sums [group][tap][OPG])
    taps = c["OPG"] >= MIN_LANES and kind == "grad_conv_weight"
    if taps:
        direct = pad["PAD"] + oh * ow * c["O"] + c["O"] * c["CPG"] * kh * kw
    return {"pad": pad, "wide": wide if kind != "grad_conv_weight" else None, "taps": taps,
            "convbuf": max(direct, pad["PAD"]), "convcols": pad["COLS"]}  # fmt: skip


def scratch(ops: list[dict]) -> dict[str, int]:
    """The sizes of the workspace's convolution scratch: the largest need of any op (0: none)."""
    convs = [o["cl"] for o in ops if "cl" in o]
    return {
        "convbuf": max((cl["convbuf"] for cl in convs), default=0),
        "convcols": max((cl["convcols"] for cl in convs), default=0),
    }


__all__ = ["VEC", "layout", "scratch"]
