import sys

import pytest

from planner import DataError
from planner.images import fit, input_bytes, sample_photo

Image = pytest.importorskip("PIL.Image")


def test_default_photo_at_224():
    out = input_bytes()
    assert out["shape"] == [3, 224, 224]
    (photo,) = out["photos"]
    assert photo["path"].endswith("grace_hopper.jpg")
    assert photo["raw"] == 3 * 224 * 224
    assert 0 < photo["jpeg_q75"] < photo["jpeg_q90"] < photo["png"] < photo["raw"]
    assert out["median"] == {k: v for k, v in photo.items() if k != "path"}


def test_fit_scales_the_short_side_and_crops_the_centre():
    stripes = Image.new("RGB", (400, 100), "red")
    stripes.paste((0, 255, 0), (100, 0, 300, 100))
    stripes.paste((0, 0, 255), (300, 0, 400, 100))
    out = fit(stripes, 50, 50)  # 400x100 -> 200x50, keep columns 75..125: all inside the green middle
    assert out.size == (50, 50)
    assert out.getcolors() == [(50 * 50, (0, 255, 0))]
    assert fit(stripes, 50, 190).getpixel((0, 25))[0] > 200  # wider crop reaches the red edge
    assert fit(stripes, 30, 120).size == (120, 30)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 96, 160)])
def test_other_input_shapes(shape):
    out = input_bytes(shape)
    c, h, w = shape
    assert out["median"]["raw"] == c * h * w
    assert all(out["median"][k] > 0 for k in ("jpeg_q90", "jpeg_q75", "png"))


def test_folder_of_photos_and_median(tmp_path):
    photo = Image.open(sample_photo()).convert("RGB")
    photo.crop((0, 0, 300, 300)).save(tmp_path / "a.jpg", quality=95)
    photo.crop((200, 300, 512, 600)).save(tmp_path / "b.png")
    Image.new("RGB", (400, 300), "gray").save(tmp_path / "c.bmp")  # flat: compresses best
    (tmp_path / "notes.txt").write_text("not an image")
    out = input_bytes((3, 64, 64), tmp_path)
    assert [p["path"].rsplit("/", 1)[1] for p in out["photos"]] == ["a.jpg", "b.png", "c.bmp"]
    for fmt in ("jpeg_q90", "jpeg_q75", "png"):
        sizes = sorted(p[fmt] for p in out["photos"])
        assert out["median"][fmt] == sizes[1]
        assert out["photos"][2][fmt] == sizes[0]
    same = input_bytes((3, 64, 64), [tmp_path / "b.png", str(tmp_path / "a.jpg")])
    assert [p["png"] for p in same["photos"]] == [out["photos"][1]["png"], out["photos"][0]["png"]]


def test_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="no images"):
        input_bytes(images=tmp_path)
    with pytest.raises(DataError, match="not found.*missing.jpg"):
        input_bytes(images=[tmp_path / "missing.jpg"])
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(DataError, match="cannot read image .*broken.jpg"):
        input_bytes(images=tmp_path)
    with pytest.raises(DataError, match="not an image"):
        input_bytes((4, 224, 224))
    with pytest.raises(DataError, match="not an image"):
        input_bytes((3, 224))


def test_missing_pillow_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DataError, match=r'pip install "planner\[images\]"'):
        input_bytes()
