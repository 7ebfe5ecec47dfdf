"""FP8 (E4M3) linear layers with DeepSeek-V3's fine-grained scaling.

Why fine-grained: one scale per tensor lets a single outlier crush every other value into E4M3's
few subnormals. DeepSeek-V3 scales activations per 1x128 tile (one token, 128 input channels) and
weights per 128x128 block, so an outlier only costs precision inside its own tile. Scales are FP32
(``amax / 448``); a tile of zeros gets scale 1 (never a division by zero).

The product of two quantised operands is formed 128 reduction elements at a time, each partial
sum scaled by its two FP32 scales and accumulated in FP32 (DeepSeek-V3's promotion every 128
elements). Three backends compute exactly that; they differ only in summation order (and in the
tensor cores' own accumulation inside a 128-element slice on a GPU):

* ``blockwise``: one ``torch.nn.functional.scaled_mm`` call with the BlockWise1x128 x BlockWise128x128
  (or 1x128 x 1x128) recipe -- cuBLASLt >= 12.9 on SM90 (Hopper), the only place torch offers it;
* ``rowwise``: per 128-wide slice of the reduction dim, one row-wise scaled FP8 GEMM with FP32
  output, summed in FP32 -- any FP8-capable GPU (capability >= 8.9), and CPU (used in tests);
  rows are padded to multiples of 16 for the kernel, as for ``blockwise``;
* ``emulated``: the FP8 values upcast to FP32, multiplied per slice and scaled -- everywhere.

A GPU backend is chosen once per (device, output dtype, operand kind) by running it on a probe and
checking it against the emulation; a kernel that is unavailable falls back (with a warning), one
that disagrees is an error. "Unavailable" includes an older torch without ``F.scaled_mm`` or whose
``F.ScalingType`` lacks a recipe (AttributeError, TypeError), not only a kernel refusing the shapes.

Training (``FP8Linear`` with master weights in BF16 or FP32): all three GEMMs run in FP8 as in
DeepSeek-V3. Forward ``y = x W^T``: x in 1x128 tiles, W in 128x128 blocks. Input gradient
``dx = dy W``: dy in 1x128 tiles along the output features, W reusing its forward blocks
(transposed). Weight gradient ``dW = dy^T x``: dy and x both in 1x128 tiles along the tokens
(DeepSeek's 128x1 backward tiles). Quantisation is treated as the identity in backward (a
straight-through estimator); dW is returned in the master weight's dtype. Unlike DeepSeek-V3 we
keep x in its original precision for the backward pass instead of caching it in FP8. Bias adds
in the output dtype.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

E4M3 = torch.float8_e4m3fn
E4M3_MAX = 448.0
BLOCK = 128
BACKENDS = ("blockwise", "rowwise", "emulated")


@dataclass(frozen=True)
class Quantized:
    """An FP8 matrix and its FP32 scales. ``data`` is zero-padded to whole 128-column tiles (and,
    for 128x128 blocks, whole 128-row blocks); ``shape`` is the matrix before padding."""

    data: torch.Tensor  # float8_e4m3fn [rows (padded for blocks), cols padded to 128]
    scale: torch.Tensor  # float32: [rows, cols/128] for tiles, [rows/128, cols/128] for blocks
    shape: tuple[int, int]
    block_rows: int  # 1 (1x128 tiles) or 128 (128x128 blocks)

    def row_scales(self) -> torch.Tensor:
        """One scale per (row of ``data``, 128-column tile): blocks repeated down their rows."""
        return self.scale.repeat_interleave(self.block_rows, dim=0) if self.block_rows > 1 else self.scale

    def dequantize(self) -> torch.Tensor:
        rows, cols = self.shape
        scales = self.row_scales().repeat_interleave(BLOCK, dim=1)
        return (self.data.float() * scales)[:rows, :cols]

    def t(self) -> "Quantized":
        """The transposed matrix under the same 128x128 blocks (a square block transposes into itself)."""
        if self.block_rows != BLOCK:
            raise ValueError("Quantized.t: only 128x128 blocks transpose; re-quantise 1x128 tiles instead")
        return Quantized(self.data.t().contiguous(), self.scale.t().contiguous(), self.shape[::-1], BLOCK)


def _pad_to(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    return F.pad(x, (0, cols - x.shape[1], 0, rows - x.shape[0]))


def _ceil(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _scale_of(amax: torch.Tensor) -> torch.Tensor:
    scale = amax / E4M3_MAX
    return torch.where(scale > 0, scale, torch.ones_like(scale))  # zero (or underflowing) tiles: scale 1


def _to_e4m3(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)  # clamp: the cast's overflow behaviour varies by device


def quantize_tiles(x: torch.Tensor) -> Quantized:
    """Quantise a 2-D tensor in 1x128 tiles along its last (reduction) dim."""
    if x.dim() != 2:
        raise ValueError(f"quantize_tiles: expected a 2-D tensor, got shape {tuple(x.shape)}")
    rows, cols = x.shape
    padded = _pad_to(x.float().contiguous(), rows, _ceil(cols, BLOCK)).reshape(rows, _ceil(cols, BLOCK) // BLOCK, BLOCK)
    scale = _scale_of(padded.abs().amax(dim=-1))
    data = _to_e4m3(padded / scale[..., None]).reshape(rows, _ceil(cols, BLOCK))
    return Quantized(data, scale, (rows, cols), 1)


def quantize_blocks(w: torch.Tensor) -> Quantized:
    """Quantise a 2-D tensor in 128x128 blocks."""
    if w.dim() != 2:
        raise ValueError(f"quantize_blocks: expected a 2-D tensor, got shape {tuple(w.shape)}")
    rows, cols = w.shape
    prows, pcols = _ceil(rows, BLOCK), _ceil(cols, BLOCK)
    blocks = _pad_to(w.float().contiguous(), prows, pcols).reshape(prows // BLOCK, BLOCK, pcols // BLOCK, BLOCK)
    scale = _scale_of(blocks.abs().amax(dim=(1, 3)))
    data = _to_e4m3(blocks / scale[:, None, :, None]).reshape(prows, pcols)
    return Quantized(data, scale, (rows, cols), BLOCK)


def _check_operands(a: Quantized, b: Quantized) -> None:
    if a.block_rows != 1:
        raise ValueError("scaled_matmul: the left operand must be quantised in 1x128 tiles")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"scaled_matmul: reduction dims differ: {a.shape} against {b.shape}")


def _rows_to_16(q: Quantized) -> Quantized:
    """1x128 tiles with their rows zero-padded (scale 1) to a multiple of 16, as torch's FP8 GEMMs
    require; ``shape`` still says which rows are real."""
    rows = q.data.shape[0]
    data = _pad_to(q.data.view(torch.uint8), _ceil(rows, 16), q.data.shape[1]).view(E4M3)
    return Quantized(data, F.pad(q.scale, (0, 0, 0, data.shape[0] - rows), value=1.0), q.shape, 1)


def _sum_slices(a: Quantized, b: Quantized, product: Any) -> torch.Tensor:
    """``a @ b.T`` as the FP32 sum over 128-wide reduction slices of ``product(a slice, b slice,
    a's scales [M, 1], b's scales [1, N])``, each slice's product already scaled."""
    _check_operands(a, b)
    sa, sb = a.row_scales(), b.row_scales()
    out = torch.zeros(a.data.shape[0], b.data.shape[0], dtype=torch.float32, device=a.data.device)
    for k in range(sa.shape[1]):
        cols = slice(k * BLOCK, (k + 1) * BLOCK)
        out += product(a.data[:, cols], b.data[:, cols], sa[:, k, None], sb[None, :, k])
    return out[:a.shape[0], :b.shape[0]]


def matmul_emulated(a: Quantized, b: Quantized) -> torch.Tensor:
    """``a @ b.T`` in FP32 from the FP8 values upcast (their products and 128-term sums are exact
    or nearly so in FP32, as in the tensor cores)."""
    return _sum_slices(a, b, lambda qa, qb, sa, sb: (qa.float() @ qb.float().t()) * (sa * sb))


def matmul_rowwise(a: Quantized, b: Quantized) -> torch.Tensor:
    """``a @ b.T``: per reduction slice a row-wise scaled FP8 GEMM (FP32 out), summed in FP32."""
    _check_operands(a, b)
    a, b = _rows_to_16(a), _rows_to_16(b) if b.block_rows == 1 else b  # blocks are padded to 128 already
    return _sum_slices(a, b, lambda qa, qb, sa, sb: F.scaled_mm(
        qa, qb.t(), sa.contiguous(), F.ScalingType.RowWise, sb.contiguous(), F.ScalingType.RowWise,
        output_dtype=torch.float32))


def matmul_blockwise(a: Quantized, b: Quantized, out_dtype: torch.dtype) -> torch.Tensor:
    """``a @ b.T`` as one DeepSeek-recipe ``scaled_mm`` (SM90). Layouts follow torch's checks for
    the v2 API: A row-major [M, K], B column-major [K, N]; A's scales [M, K/128] with strides
    (1, M); 128x128 B scales [round_up(K/128, 4), N/128] with strides (1, that round-up); 1x128 B
    scales [N, K/128] with strides (1, N). Rows are padded to multiples of 16 for the kernel."""
    _check_operands(a, b)
    a = _rows_to_16(a)
    if b.block_rows == 1:
        b = _rows_to_16(b)
        b_scale, recipe_b = b.scale.t().contiguous().t(), F.ScalingType.BlockWise1x128
    else:
        k_blocks = b.scale.shape[1]
        b_scale = F.pad(b.scale, (0, _ceil(k_blocks, 4) - k_blocks), value=1.0).t()
        recipe_b = F.ScalingType.BlockWise128x128
    out = F.scaled_mm(a.data, b.data.t(), a.scale.t().contiguous().t(), F.ScalingType.BlockWise1x128,
                      b_scale, recipe_b, output_dtype=out_dtype)
    return out[:a.shape[0], :b.shape[0]]


_BACKEND: dict[tuple[str, torch.dtype, int], str] = {}


def backend_for(device: torch.device, out_dtype: torch.dtype, b_block_rows: int = BLOCK) -> str:
    """The fastest backend that works here for a right operand in 1x128 tiles (``b_block_rows``
    1) or 128x128 blocks (128), probed once per device, output dtype and operand kind."""
    if device.type != "cuda":
        return "emulated"
    key = (str(device), out_dtype, b_block_rows)
    if key not in _BACKEND:
        capability = torch.cuda.get_device_capability(device)
        candidates = (["blockwise"] if capability[0] == 9 else []) + (["rowwise"] if capability >= (8, 9) else [])
        _BACKEND[key] = next((name for name in candidates if _probe(name, device, out_dtype, b_block_rows)),
                             "emulated")
    return _BACKEND[key]


def _probe(backend: str, device: torch.device, out_dtype: torch.dtype, b_block_rows: int) -> bool:
    """Run ``backend`` on operands whose tiles and blocks differ in scale by up to 2^8 (so a scale
    applied to the wrong tile shows) and compare it with the emulation row by row."""
    generator = torch.Generator(device=device).manual_seed(0)

    def spread(rows: int, cols: int, block_rows: int) -> torch.Tensor:
        factors = torch.exp2(torch.randint(-4, 5, (rows // block_rows, cols // BLOCK), device=device,
                                           generator=generator).float())
        factors = factors.repeat_interleave(block_rows, 0).repeat_interleave(BLOCK, 1)
        return torch.randn(rows, cols, device=device, generator=generator) * factors

    a = quantize_tiles(spread(48, 384, 1))
    b = quantize_tiles(spread(64, 384, 1)) if b_block_rows == 1 else quantize_blocks(spread(256, 384, BLOCK))
    try:
        got = _run(backend, a, b, out_dtype).float()
    except (RuntimeError, NotImplementedError, ValueError, AttributeError, TypeError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        warnings.warn(f"FP8 {backend} kernel unavailable on {device} (torch {torch.__version__}: {reason}); "
                      "falling back", stacklevel=3)
        return False
    want = matmul_emulated(a, b)
    error = ((got - want).abs().amax(dim=1) / want.abs().amax(dim=1)).max()
    if not error < 1e-2:  # bf16 output rounds at 2^-9; a misplaced scale is off by 2x or more
        raise RuntimeError(f"FP8 {backend} kernel on {device} disagrees with the emulation "
                           f"(largest row error {float(error):.3g} of the row's magnitude)")
    return True


def _run(backend: str, a: Quantized, b: Quantized, out_dtype: torch.dtype) -> torch.Tensor:
    if backend == "blockwise":
        return matmul_blockwise(a, b, out_dtype)
    if backend == "rowwise":
        return matmul_rowwise(a, b).to(out_dtype)
    return matmul_emulated(a, b).to(out_dtype)


def scaled_matmul(a: Quantized, b: Quantized, out_dtype: torch.dtype = torch.float32,
                  backend: str | None = None) -> torch.Tensor:
    """``a @ b.T`` ([M, K] tiles times [N, K] tiles or blocks -> [M, N]) with FP32 accumulation,
    on the best ``backend`` for the device unless one is named."""
    backend = backend or backend_for(a.data.device, out_dtype, b.block_rows)
    if backend not in BACKENDS:
        raise ValueError(f"scaled_matmul: unknown backend {backend!r}; choose one of {BACKENDS}")
    return _run(backend, a, b, out_dtype)


class _FP8Matmul(torch.autograd.Function):
    """y = x W^T with all three GEMMs in FP8 (see the module docstring for what is quantised)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, qweight: Quantized) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.qweight, ctx.weight_dtype = qweight, weight.dtype
        return scaled_matmul(quantize_tiles(x), qweight, x.dtype)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        (x,) = ctx.saved_tensors
        dx = dw = None
        if ctx.needs_input_grad[0]:
            dx = scaled_matmul(quantize_tiles(dy), ctx.qweight.t(), dy.dtype)
        if ctx.needs_input_grad[1]:
            dw = scaled_matmul(quantize_tiles(dy.t()), quantize_tiles(x.t()), torch.float32).to(ctx.weight_dtype)
        return dx, dw, None


class FP8Linear(nn.Linear):
    """A drop-in ``nn.Linear`` (same parameters and state dict) whose matmuls run in FP8.

    The weight's 128x128 quantisation is cached and reused until the weight changes (any in-place
    update, such as an optimizer step or ``load_state_dict``, bumps its version; writes through
    ``weight.data`` bypass the version counter and are not seen). ``fp8 = False``
    (see ``full_precision``) computes the ordinary full-precision product with the same weights."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, **kwargs: Any):
        super().__init__(in_features, out_features, bias=bias, **kwargs)
        self.fp8 = True
        self._cache: tuple[tuple, Quantized] | None = None

    def quantized_weight(self) -> Quantized:
        w = self.weight
        key = (w._version, w.data_ptr(), w.device, w.dtype)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, quantize_blocks(w.detach()))
        return self._cache[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fp8:
            return super().forward(x)
        y = _FP8Matmul.apply(x.reshape(-1, x.shape[-1]), self.weight, self.quantized_weight())
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y + self.bias.to(y.dtype) if self.bias is not None else y


@contextmanager
def full_precision(model: nn.Module) -> Iterator[nn.Module]:
    """Run every FP8Linear in ``model`` in full precision inside the block (the same weights)."""
    layers = [m for m in model.modules() if isinstance(m, FP8Linear)]
    before = [m.fp8 for m in layers]
    for m in layers:
        m.fp8 = False
    try:
        yield model
    finally:
        for m, state in zip(layers, before):
            m.fp8 = state


def to_fp8(model: nn.Module) -> nn.Module:
    """The same model (class, weights, dtype, device) rebuilt with ``config.fp8`` on, so every
    projection made by ``make_linear`` is an FP8Linear. Build it before the optimizer."""
    if model.config.fp8:
        return model
    converted = type(model)(dataclasses.replace(model.config, fp8=True))
    converted.load_state_dict(model.state_dict())
    return converted.to(next(model.parameters()))
