"""MONAI Label 0.8.5 serves the bundle: BundleInferTask, BundleTrainTask and the monaibundle sample app (offline).

Run in the MONAI Label venv by integration/run.sh (`make integration`); cir-monai is installed there from its wheel.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import disagreement, mean_dice
from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.tasks.train.bundle import BundleTrainTask


@pytest.fixture(scope="module")
def infer_task(bundle):
    task = BundleInferTask(str(bundle), {"preload": "false"})
    assert task.is_valid(), "BundleInferTask rejected the bundle"
    return task


def _infer(task, image, **params):
    out, result = task({"image": str(image), "device": "cpu", **params})
    return nib.load(out), result


def test_infer_task_equals_cir_monai_and_is_on_the_input_grid(infer_task, image, reference, truth):
    assert infer_task.config()["lam"] == 1.0  # displayable_configs: λ is an option of the task
    start = time.perf_counter()
    seg, _ = _infer(infer_task, image)
    seconds = time.perf_counter() - start
    source = nib.load(str(image))
    assert seg.shape[:3] == source.shape[:3] and np.allclose(seg.affine, source.affine, atol=1e-4)
    labels = np.asarray(seg.dataobj).squeeze().round().astype(np.int32)
    assert disagreement(labels, reference) <= 1e-4
    print(f"MONAI Label infer: Dice {mean_dice(labels, truth):.3f}, {seconds:.1f} s per request")


def test_lambda_from_the_request_reaches_the_network(infer_task, image, reference):
    smooth, _ = _infer(infer_task, image, lam=10.0)
    labels = np.asarray(smooth.dataobj).squeeze().round().astype(np.int32)
    assert disagreement(labels, reference) > 1e-3  # λ = 10 is another registration than λ = 1


def test_train_task_runs_and_writes_the_bundle_model(bundle, image, truth, work):
    """BundleTrainTask with a local datastore of 3 labelled images, 1 epoch: the weights land in models/model.pt."""
    from monailabel.datastore.local import LocalDatastore

    trained = work / "bundle"
    shutil.copytree(bundle, trained)
    studies = work / "studies"
    (studies / "labels" / "final").mkdir(parents=True)
    for i in range(3):
        shutil.copy(image, studies / f"subject_{i}.nii.gz")
        nib.save(nib.Nifti1Image(truth.astype(np.int16), nib.load(str(image)).affine),
                 str(studies / "labels" / "final" / f"subject_{i}.nii.gz"))
    datastore = LocalDatastore(str(studies), extensions=["*.nii.gz"], auto_reload=False)
    before = (trained / "models" / "model.pt").stat().st_mtime_ns
    task = BundleTrainTask(str(trained), {})
    result = task({"model": "cir_monai_atlas", "max_epochs": 1, "val_split": 0.34, "device": "cpu", "pretrained": True, "multi_gpu": False},
                  datastore)
    assert (trained / "models" / "model.pt").stat().st_mtime_ns > before, result
    import torch

    assert "levels.0.down.weight" in torch.load(trained / "models" / "model.pt", weights_only=True)


def test_monaibundle_sample_app_loads_the_bundle_offline(bundle, work):
    sample = Path(sys.prefix) / "monailabel" / "sample-apps" / "monaibundle"
    app_dir = work / "app"
    shutil.copytree(sample, app_dir)
    shutil.copytree(bundle, app_dir / "model" / "cir_monai_atlas")
    (work / "studies").mkdir()
    sys.path.insert(0, str(app_dir))
    try:
        from main import MyApp

        app = MyApp(str(app_dir), str(work / "studies"),
                    {"models": "cir_monai_atlas", "zoo_source": "github", "sam2": "false", "preload": "false"})
        info = app.info()
    finally:
        sys.path.remove(str(app_dir))
    assert "cir_monai_atlas" in info["models"] and "cir_monai_atlas" in info["trainers"]
    assert info["models"]["cir_monai_atlas"]["config"]["lam"] == 1.0


def test_server_serves_the_bundle_as_the_readme_says(bundle, image, reference, work):
    """The bundle README's steps: the monaibundle app with the bundle under model/, `monailabel start_server`
    on 127.0.0.1 offline, then `POST /infer/<model>?image=<id>` with λ in params. Bounded: 300 s to start."""
    import json
    import socket
    import subprocess
    import urllib.request

    app_dir, studies = work / "app", work / "studies"
    shutil.copytree(Path(sys.prefix) / "monailabel" / "sample-apps" / "monaibundle", app_dir)
    shutil.copytree(bundle, app_dir / "model" / "cir_monai_atlas")
    studies.mkdir()
    shutil.copy(image, studies / "subject.nii.gz")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    server = subprocess.Popen(
        ["monailabel", "start_server", "--app", str(app_dir), "--studies", str(studies), "--conf", "models",
         "cir_monai_atlas", "--conf", "zoo_source", "github", "--conf", "sam2", "false", "-i", "127.0.0.1",
         "-p", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                info = json.loads(urllib.request.urlopen(f"{base}/info/", timeout=5).read())
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()[-3000:]
                time.sleep(1)
        else:
            pytest.fail("MONAI Label did not answer within 300 s")
        assert "cir_monai_atlas" in info["models"]
        boundary = "cirmonai"
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n\r\n{{"lam": 1.0}}\r\n'
                f"--{boundary}--\r\n").encode()
        request = urllib.request.Request(f"{base}/infer/cir_monai_atlas?image=subject&output=image", data=body,
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        (work / "result.nii.gz").write_bytes(urllib.request.urlopen(request, timeout=600).read())
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    seg = nib.load(str(work / "result.nii.gz"))
    labels = np.asarray(seg.dataobj).squeeze().round().astype(np.int32)
    assert np.allclose(seg.affine, nib.load(str(image)).affine, atol=1e-4)
    assert disagreement(labels, reference) <= 1e-4
