"""MONAI Label 0.8.5 serves the bundle: BundleInferTask, BundleTrainTask and the monaibundle sample app (offline).

Run in the MONAI Label venv by integration/run.sh (`make integration`); cir-monai is installed there from its wheel.
The sample app, the server and the HTTP requests are set up with the commands of the bundle README's section
"Use it in MONAI Label", read from it and run as written (`doc_block`): only the studies folder, the server's
address and the image id are filled in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import disagreement, doc_block, doc_wheel_names, mean_dice, wheel_name
from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.tasks.train.bundle import BundleTrainTask


@pytest.fixture(scope="module")
def infer_task(bundle):
    task = BundleInferTask(str(bundle), {"preload": "false"})
    assert task.is_valid(), "BundleInferTask rejected the bundle"
    return task


SECTION = "Use it in MONAI Label"
MODEL = "cir_monai_atlas"  # the model name of the README's commands


def _infer(task, image, **params):
    out, result = task({"image": str(image), "device": "cpu", **params})
    return nib.load(out), result


def _labels(seg) -> np.ndarray:
    """The label map of a written result, checked to be stored as int16 labels (what the README promises)."""
    assert seg.get_data_dtype() == np.int16, f"the label map is stored as {seg.get_data_dtype()}, not int16"
    return np.asarray(seg.dataobj).squeeze().astype(np.int32)


def _env() -> dict:
    """The environment of the README's shell commands: this venv's `monailabel` and `python` first on PATH."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def _shell(command: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


def _app_as_documented(bundle: Path, work: Path) -> Path:
    """Step 2 of the README in ``work`` (the bundle folder there as `bundle`): the sample app with the bundle in it."""
    shutil.copytree(bundle, work / "bundle")
    _shell(doc_block(SECTION, "bash", "monailabel apps"), cwd=work)
    app = work / re.search(r"--app (\S+)", doc_block(SECTION, "bash", "start_server")).group(1)
    assert (app / "model" / MODEL / "configs" / "inference.yaml").is_file(), sorted(app.rglob("*"))[:20]
    return app


def test_infer_task_equals_cir_monai_and_is_on_the_input_grid(infer_task, image, reference, truth):
    assert infer_task.config()["lam"] == 1.0  # displayable_configs: λ is an option of the task
    start = time.perf_counter()
    seg, _ = _infer(infer_task, image)
    seconds = time.perf_counter() - start
    source = nib.load(str(image))
    assert seg.shape[:3] == source.shape[:3] and np.allclose(seg.affine, source.affine, atol=1e-4)
    labels = _labels(seg)
    assert disagreement(labels, reference) <= 1e-4
    print(f"MONAI Label infer: Dice {mean_dice(labels, truth):.3f}, {seconds:.1f} s per request")


def test_lambda_from_the_request_reaches_the_network(infer_task, image, reference):
    smooth, _ = _infer(infer_task, image, lam=10.0)
    labels = _labels(smooth)
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
    result = task({"model": "cir_monai_atlas", "max_epochs": 1, "val_split": 0.34, "device": "cpu", "pretrained": True,
                   "multi_gpu": False},
                  datastore)
    assert (trained / "models" / "model.pt").stat().st_mtime_ns > before, result
    import torch

    assert "levels.0.down.weight" in torch.load(trained / "models" / "model.pt", weights_only=True)


def test_monaibundle_sample_app_loads_the_bundle_offline(bundle, work):
    app_dir = _app_as_documented(bundle, work)
    (work / "studies").mkdir()
    sys.path.insert(0, str(app_dir))
    try:
        from main import MyApp

        app = MyApp(str(app_dir), str(work / "studies"),
                    {"models": MODEL, "zoo_source": "github", "sam2": "false", "preload": "false"})
        info = app.info()
    finally:
        sys.path.remove(str(app_dir))
    assert MODEL in info["models"] and MODEL in info["trainers"]
    assert info["models"][MODEL]["config"]["lam"] == 1.0


@pytest.fixture(scope="module")
def server(bundle, image, tmp_path_factory):
    """README steps 2 and 3: the sample app with the bundle, `monailabel start_server` as written, on 127.0.0.1
    (a free port) with the image as study `subject`. Yields the base URL. Bounded: 300 s to answer /info/."""
    work = tmp_path_factory.mktemp("server")
    _app_as_documented(bundle, work)
    studies = work / "studies"
    studies.mkdir()
    shutil.copy(image, studies / "subject.nii.gz")
    command = doc_block(SECTION, "bash", "start_server").rstrip()
    assert "--studies /data/t1_images" in command, command
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = command.replace("/data/t1_images", str(studies)) + f" -i 127.0.0.1 -p {port}"
    log = work / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", "-c", command], cwd=work, env=_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                info = json.loads(urllib.request.urlopen(f"{base}/info/", timeout=5).read())
                break
            except OSError:
                assert proc.poll() is None, log.read_text()[-3000:]
                time.sleep(1)
        else:
            pytest.fail(f"MONAI Label did not answer within 300 s:\n{log.read_text()[-3000:]}")
        assert MODEL in info["models"]
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _documented_request(command: str, base: str) -> str:
    """A README curl command aimed at the test server and its study `subject`."""
    assert "http://127.0.0.1:8000/" in command and "<image id>" in command, command
    return command.replace("http://127.0.0.1:8000", base).replace("<image id>", "subject")


def test_server_serves_the_bundle_as_the_readme_says(server, infer_task, image, work):
    """README step 4: the curl request as written (λ from its params) returns int16 labels on the image's grid,
    the same as the infer task at that λ (which equals cir-monai's own output at λ = 1, test above)."""
    command = _documented_request(doc_block(SECTION, "bash", "curl"), server)
    lam = json.loads(re.search(r"params=(\{.*?\})'", command).group(1))["lam"]
    _shell(command, cwd=work)
    result = work / re.search(r"-o (\S+)", command).group(1)
    assert result.read_bytes()[:2] == b"\x1f\x8b", result.read_bytes()[:2000]  # a .nii.gz, not an error answer
    seg = nib.load(str(result))
    assert np.allclose(seg.affine, nib.load(str(image)).affine, atol=1e-4)
    expected, _ = _infer(infer_task, image, lam=lam)
    assert disagreement(_labels(seg), _labels(expected)) <= 1e-4


def test_lambda_outside_the_range_is_a_client_error(server, work):
    """{"lam": 12} (the model's range is [0, 10]): HTTP 4xx whose message gives the range, not a 500 with a
    traceback; and the README's curl example prints what the README shows."""
    boundary = "cirmonai"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n\r\n{{"lam": 12}}\r\n'
            f"--{boundary}--\r\n").encode()
    request = urllib.request.Request(f"{server}/infer/{MODEL}?image=subject&output=image", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=600)
    status, text = answer.value.code, answer.value.read().decode()
    assert 400 <= status < 500, (status, text[-2000:])
    assert "[0, 10]" in json.loads(text)["detail"], text

    example = doc_block(SECTION, "console", '"lam": 12').strip().splitlines()
    assert len(example) == 2 and example[0].startswith("$ "), example
    shown = _shell(_documented_request(example[0][2:], server), cwd=work).stdout.strip()
    assert shown == example[1].strip(), shown


def test_the_readme_names_the_wheel_that_is_built():
    assert doc_wheel_names("Use it in MONAI Label") == {wheel_name()}, \
        "bundle/docs/README.md names another cir-monai wheel"
