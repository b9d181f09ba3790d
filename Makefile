# Two commands set everything up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= out/demo

.PHONY: venv demo test bench sample clean gpu-wheels chromium

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	@rm -rf $(OUT)
	-$(VENV)/bin/datatools check sample_data
	$(VENV)/bin/datatools voc2yolo sample_data $(OUT)/yolo
	$(VENV)/bin/datatools voc2coco sample_data $(OUT)/coco
	$(VENV)/bin/datatools split sample_data $(OUT)/split --val 0.2 --test 0.1 --images-mode none
	$(VENV)/bin/datatools stats sample_data --plots $(OUT)/stats
	$(VENV)/bin/datatools anchors sample_data -k 6 --img-size 320
	$(VENV)/bin/datatools visualize sample_data $(OUT)/viz --grid 4x4 --limit 32
	@# A tiny CPU run that proves the loop closes (train -> predict -> evaluate -> look); a GPU run learns the set.
	$(VENV)/bin/datatools train sample_data --out $(OUT)/train --image-size 128 --epochs 2 -b 4 --limit 16 -j 0
	$(VENV)/bin/datatools predict $(OUT)/train/best.pt sample_data -f voc --split val -o $(OUT)/preds.json -j 0
	$(VENV)/bin/datatools evaluate --gt sample_data --split val --pred $(OUT)/preds.json --plots $(OUT)/eval
	$(VENV)/bin/datatools visualize sample_data $(OUT)/viz_pred --pred $(OUT)/preds.json --score-thr 0.05 --grid 3x3 --limit 9 --ids 'shapes_00[0-4]*'

	@echo
	@echo "Outputs:"
	@echo "  YOLO (ultralytics): $(OUT)/yolo/data.yaml"
	@echo "  COCO:               $(OUT)/coco/annotations/"
	@echo "  split (VOC):        $(OUT)/split/ImageSets/Main/"
	@echo "  stats plots:        $(OUT)/stats/"
	@echo "  contact sheets:     $(OUT)/viz/sheet_0001.jpg"
	@echo "  model, log:         $(OUT)/train/best.pt, $(OUT)/train/results.csv"
	@echo "  predictions, eval:  $(OUT)/preds.json, $(OUT)/eval/"
	@echo "  GT vs predictions:  $(OUT)/viz_pred/sheet_0001.jpg"
	@$(VENV)/bin/datatools report sample_data $(OUT)/report.html && echo "  report (open it):   $(OUT)/report.html"

test: $(STAMP) chromium
	$(PY) -m pytest -q

# The report's browser test needs Debian's chromium. Without root, apt-get or network it is not installed, and that
# test skips with its reason; `make test` never fails here.
chromium:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
		DEBIAN_FRONTEND=noninteractive timeout 900 sh -c 'apt-get update -qq && apt-get install -y -qq chromium' \
		>/dev/null 2>&1 && echo "installed chromium for the report's browser test"; } || \
		echo "could not install chromium (no root, apt-get or network): the report's browser test will be skipped"

sample:
	$(PY) sample_data/make_sample_data.py

bench: $(STAMP)
	$(PY) benchmarks/bench_convert.py

# The wheels benchmarks/gpu_check.sh installs on the device machine: its image (Python 3.12) has torch, torchvision,
# pytest, click, rich, lxml, pillow, numpy, PyYAML, matplotlib and fsspec, but not these two. Pinned to this venv's
# versions; one version of each (two would stop the install there). Carry them with carry=[".whl"].
WHEEL_PINS = $(shell $(PY) -c "import importlib.metadata as m; print(' '.join(f'{n}=={m.version(n)}' for n in ('pycocotools', 'faster-coco-eval')))" 2>/dev/null)
gpu-wheels: $(STAMP)
	rm -rf .whl
	$(PY) -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp --no-deps -d .whl \
		--platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_27_x86_64 \
		--platform manylinux_2_28_x86_64 $(WHEEL_PINS)
	@ls .whl

clean:
	rm -rf out .pytest_cache
