from __future__ import annotations

from PIL import Image

from cir_monai import demo


def test_demo_registers_the_phantom(reference_dir, tmp_path, capsys):
    code = demo.main(
        ["--weights", str(reference_dir / "official_clapirn_lite_oasis.pth"), "--out", str(tmp_path), "--size", "48,56,48", "--lams", "0.5,4"]
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    before = float(lines[1].split("Dice before: ")[1].rstrip(")"))
    rows = [line.split() for line in lines[2:4]]
    assert all(float(r[1]) > before + 0.05 for r in rows)  # registration improves Dice
    assert float(rows[1][2]) < float(rows[0][2])  # larger λ, smoother field
    assert Image.open(tmp_path / "demo_slices.png").getextrema()[0][1] > 0


def test_demo_without_weights(tmp_path, capsys):
    assert demo.main(["--weights", str(tmp_path / "missing.pth"), "--out", str(tmp_path)]) == 2
    assert "no weights at" in capsys.readouterr().err
