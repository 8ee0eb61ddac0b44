"""The paper's numbers as data: the trajectory must match Fig. 6 exactly."""

import pytest

from ldae_lite import paper

FIG6 = [57.5, 62.5, 58.4, 59.0, 63.4, 64.9, 64.7, 65.1, 62.4, 63.6, 63.6, 63.9, 64.5]
KEYS = ["dit_baseline", "no_class_cond", "no_perceptual", "no_adversarial", "linear_gamma2", "patch_vae",
        "patch_ae", "patch_pca", "predict_x0", "no_input_scaling", "image_input", "image_output", "predict_image"]


def test_trajectory_is_fig6():
    assert [s.accuracy for s in paper.TRAJECTORY] == FIG6
    assert [s.key for s in paper.TRAJECTORY] == KEYS
    assert [s.legitimate for s in paper.TRAJECTORY] == [False, False] + [True] * 11
    assert [s.fid for s in paper.TRAJECTORY[:5]] == [11.6, 30.9, 54.3, 75.6, 93.2]
    assert all(s.fid is None for s in paper.TRAJECTORY[5:])


def test_step_lookup():
    assert paper.step("patch_pca").accuracy == 65.1
    with pytest.raises(ValueError, match="predict_image"):
        paper.step("no_such_step")


def test_tables_agree_with_each_other():
    # Tab. 2's best entry per tokenizer is the trajectory's number (Fig. 6 uses the best of each row).
    for kind in ("patch_vae", "patch_ae", "patch_pca"):
        assert max(paper.TOKENIZER_TABLE[kind].values()) == paper.step(kind).accuracy
    assert paper.TOKENIZER_TABLE["conv_vae"][16] == paper.step("linear_gamma2").accuracy
    assert paper.FIXED_T["clean"][10] == paper.ENCODER_DEPTH[12] == paper.step("predict_image").accuracy
    assert paper.SINGLE_NOISE == {"multi": 64.5, "single": 61.5}
    assert paper.SINGLE_NOISE_SIGMA == pytest.approx(0.57735, abs=1e-5)
    assert paper.TRAINING_LENGTH[400] == paper.MODEL_SIZE["ViT-1/2L"] == paper.AUGMENTATION["random_resized_crop"]
    assert paper.FINAL_LINEAR["l-DAE"] == {"ViT-B": 66.6, "ViT-L": 75.0}
    assert paper.FINAL_FINETUNE["MAE"]["ViT-L"] == 85.9
    assert paper.PIXEL_TOKENIZER[768] == 23.6
