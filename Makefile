# Two commands set everything up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= out/demo

.PHONY: venv demo test bench sample clean

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
	@echo
	@echo "Outputs:"
	@echo "  YOLO (ultralytics): $(OUT)/yolo/data.yaml"
	@echo "  COCO:               $(OUT)/coco/annotations/"
	@echo "  split (VOC):        $(OUT)/split/ImageSets/Main/"
	@echo "  stats plots:        $(OUT)/stats/"
	@echo "  contact sheets:     $(OUT)/viz/sheet_0001.jpg"

test: $(STAMP)
	$(PY) -m pytest -q

sample:
	$(PY) sample_data/make_sample_data.py

bench: $(STAMP)
	$(PY) benchmarks/bench_convert.py

clean:
	rm -rf out .pytest_cache
