"""Interactive views of the paper's figures: each is a plain function first, an ipywidgets wrapper second.

The plain functions return arrays and matplotlib Figures, so unit tests and headless notebook runs call
them directly; the ``explore_*`` wrappers only put controls in front of them (``_common._interactive``:
the view is drawn once with the initial values, then again on every change, never blocking).
One module per figure of arXiv 2401.14404:

* ``latent_noise``, the PCA-noise explorer (Fig. 7): clean / pixel noise / PCA-latent noise at the same
  sigma. :func:`pca_noise`, :func:`plot_pca_noise`, :func:`explore_pca_noise`, :func:`pca_view`; its
  bases come from ``pca_sources``: :func:`fitted_pca`, :func:`photo_images`, :func:`random_patches`.
* ``schedule``, the schedule explorer (Fig. 3): gamma_t^2 of DDPM's linear-beta schedule vs linear
  gamma^2, and the noised images under both at one t. :func:`schedule_curves`, :func:`plot_schedules`,
  :func:`schedule_noising`, :func:`plot_schedule_noising`, :func:`explore_schedule`.
* ``basis``, the basis viewer (Fig. 4): the components of a patch PCA (or a patch AE / VAE) as image
  patches. :func:`basis_images`, :func:`plot_basis`, :func:`explore_basis`; :func:`plot_reconstructions`.
* ``trajectory``, the trajectory viewer (Fig. 6): ours vs the paper's numbers for chosen steps.
  :func:`trajectory_rows`, :func:`trajectory_view`, :func:`explore_trajectory`.

Everything named here is importable from ``ldae_lite.widgets`` itself.
"""

from .basis import basis_images, explore_basis, plot_basis, plot_reconstructions
from .latent_noise import (
    DIMS,
    SIGMA_MAX,
    WHITEN,
    WHITEN_LABELS,
    explore_pca_noise,
    pca_noise,
    pca_view,
    plot_pca_noise,
)
from .pca_sources import PHOTO_SIZE, fitted_pca, photo_images, random_patches
from .schedule import (
    SCHEDULE_LABELS,
    explore_schedule,
    plot_schedule_noising,
    plot_schedules,
    schedule_curves,
    schedule_noising,
)
from .trajectory import explore_trajectory, trajectory_rows, trajectory_view

__all__ = [
    "DIMS", "PHOTO_SIZE", "SCHEDULE_LABELS", "SIGMA_MAX", "WHITEN", "WHITEN_LABELS",
    "basis_images", "explore_basis", "explore_pca_noise", "explore_schedule", "explore_trajectory", "fitted_pca",
    "pca_noise", "pca_view", "photo_images", "plot_basis", "plot_pca_noise", "plot_reconstructions",
    "plot_schedule_noising", "plot_schedules", "random_patches", "schedule_curves", "schedule_noising",
    "trajectory_rows", "trajectory_view",
]
