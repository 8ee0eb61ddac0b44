"""What every view shares: the image layouts it accepts, how it shows an image, and the explorer wrapper.

:func:`_interactive` is the one place where ipywidgets appears: it puts controls in front of a plain
function that returns a matplotlib Figure.
"""

from __future__ import annotations

import html
import io

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..plots import to_display


def _as_chw(image) -> tuple[torch.Tensor, bool]:
    """(C, H, W), (H, W, C) or (H, W), numpy or torch -> float32 (C, H, W), and whether it was channels-last."""
    x = torch.as_tensor(np.asarray(image) if not torch.is_tensor(image) else image).detach().float().cpu()
    if x.ndim == 2:
        return x[None], False
    if x.ndim == 3 and x.shape[0] in (1, 3):
        return x, False
    if x.ndim == 3 and x.shape[-1] in (1, 3):
        return x.permute(2, 0, 1).contiguous(), True
    raise ValueError(f"image must be (C, H, W) or (H, W, C) with C in (1, 3), or (H, W); got {tuple(x.shape)}")


def _imshow(ax, img, title=None):
    """img: (C, H, W) in [-1, 1], shown without ticks (gray for one channel), with an optional small title."""
    ax.imshow(to_display(img), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def _show(fig):
    """For the wrappers: close the figure (so a notebook does not show it twice) and return it."""
    plt.close(fig)
    return fig


def _interactive(fn, display: bool, **controls):
    """Controls in front of ``fn`` (their values as keywords -> a Figure), redrawn on every change.

    Returns an ``ipywidgets.VBox``: the controls, a status line and an ``Image`` holding the PNG of the
    figure; ``.controls`` maps each keyword to its control and ``.result`` is the last Figure drawn.
    The first drawing happens here, so an error in it is raised in the cell; an error on a later slider
    change is shown in the status line instead.

    Why not ``ipywidgets.interactive``: it shows the figure through an Output widget, and a headless runner
    (nbclient, hence nbmake) answers each output captured there with a widget-state message on the shell
    socket, the socket on which it is waiting for the cell's reply. After a large figure (the photo
    explorer's) that reply went unnoticed until the per-cell timeout, ten minutes of a test run, although
    the kernel had sent it at once. An Image widget involves no Output capture.
    """
    import ipywidgets as W

    image, status = W.Image(format="png"), W.HTML(value="")
    box = W.VBox([*controls.values(), status, image])
    box.controls, box.result = dict(controls), None

    def draw(_change=None, raise_errors: bool = False):
        status.value = "<i>drawing...</i>"
        try:
            fig = fn(**{name: control.value for name, control in controls.items()})
        except Exception as error:  # a slider callback has no cell to raise into: say it on screen
            status.value = f"<b>{type(error).__name__}</b>: {html.escape(str(error))}"
            if raise_errors:
                raise
            return
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=fig.dpi, bbox_inches="tight")
        box.result, image.value, status.value = fig, buffer.getvalue(), ""

    draw(raise_errors=True)
    for control in controls.values():
        control.observe(draw, names="value")
    if display:
        from IPython.display import display as show

        show(box)
    return box
