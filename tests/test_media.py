"""Video writing and prompt-derived file names."""

import av
import numpy as np
import pytest
from PIL import Image

from lavie_jax import media


def moving_square(frames=6, h=40, w=56):
    video = np.zeros((frames, h, w, 3), np.uint8)
    for i in range(frames):
        video[i, 10:20, 4 + 5 * i : 14 + 5 * i] = (220, 30, 30)
    return video


@pytest.mark.parametrize(
    "prompt",
    ["../../etc/x", "/abs/path", "a/b\\c", "..", "   ", "x" * 500, "a cat; rm -rf ~", "ünïcødé prompt"],
)
def test_safe_stem_stays_inside_folder(tmp_path, prompt):
    stem = media.safe_stem(prompt)
    assert stem and len(stem) <= media.MAX_STEM
    assert "/" not in stem and "\\" not in stem and ".." not in stem and not stem.startswith(".")
    target = (tmp_path / f"{stem}.mp4").resolve()
    assert target.parent == tmp_path.resolve()


def test_unique_stem_never_overwrites(tmp_path):
    (tmp_path / "a_cat.gif").write_bytes(b"")
    assert media.unique_stem(tmp_path, "a_cat", (".mp4", ".gif")) == "a_cat-2"
    assert media.unique_stem(tmp_path, "a_dog", (".mp4", ".gif")) == "a_dog"


def test_mp4_and_gif_read_back(tmp_path):
    video = moving_square()
    media.write_mp4(tmp_path / "v.mp4", video, fps=8)
    media.write_gif(tmp_path / "v.gif", video, fps=8)
    with av.open(str(tmp_path / "v.mp4")) as container:
        back = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert back.shape == video.shape
    assert np.abs(back.astype(int) - video.astype(int)).mean() < 8  # lossy h264, same content
    gif = Image.open(tmp_path / "v.gif")
    assert gif.n_frames == video.shape[0] and gif.size == (video.shape[2], video.shape[1])


def test_contact_sheet_layout():
    video = moving_square(frames=5, h=4, w=6)
    sheet = media.contact_sheet(video, columns=2, pad=1)
    assert sheet.shape == (3 * 4 + 2, 2 * 6 + 1, 3)
    np.testing.assert_array_equal(sheet[5:9, 7:13], video[3])


def test_rejects_float_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        media.write_gif(tmp_path / "x.gif", np.zeros((2, 4, 4, 3), np.float32), fps=8)
