# The README's two commands: `make tutorial` and `make test`. Each sets itself up.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JUPYTER := $(VENV)/bin/jupyter
# nbval runs every notebook in the smoke profile on real Fashion-MNIST (offline).
SMOKE_ENV := KD_PROFILE=smoke KD_DATASET=fashion-mnist KD_FIGURES_DIR=$(CURDIR)/runs/smoke-figures \
             KD_RUNS_DIR=$(CURDIR)/runs/smoke MPLBACKEND=Agg

.PHONY: install test test-unit test-notebooks test-notebooks-cifar cifar-copy record-cifar-cpu tutorial record record-notebook lab bench clean test-browser gpu-check gpu-record

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade -q pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: test-unit test-notebooks test-notebooks-cifar

# CIFAR-10 as a JPEG copy (../shared/data/, or KD_CIFAR10_JPEG=path/to/cifar10-jpeg.tar.gz), extracted once into
# data/. Without it the CIFAR-10 tests and notebook pass are skipped with a line saying so; CI sets
# KD_REQUIRE_CIFAR10_COPY=1, which makes its absence a failure.
CIFAR_TAR := $(firstword $(wildcard $(KD_CIFAR10_JPEG) ../shared/data/cifar10-jpeg.tar.gz))
CIFAR_DIR := data/cifar10-jpeg
CIFAR_ENV := KD_PROFILE=smoke KD_DATASET=imagefolder:$(CIFAR_DIR) KD_TEACHER=train MPLBACKEND=Agg \
             KD_FIGURES_DIR=$(CURDIR)/runs/smoke-cifar-figures KD_RUNS_DIR=$(CURDIR)/runs/smoke-cifar

$(CIFAR_DIR)/.extracted: $(CIFAR_TAR)
	rm -rf $(CIFAR_DIR) && mkdir -p $(CIFAR_DIR)
	tar -xzf $< -C $(CIFAR_DIR) && touch $@

cifar-copy:
ifeq ($(CIFAR_TAR),)
	@echo "skipped: no CIFAR-10 JPEG copy (looked in ../shared/data/cifar10-jpeg.tar.gz and KD_CIFAR10_JPEG)"
	@test -z "$$KD_REQUIRE_CIFAR10_COPY" || { echo "error: KD_REQUIRE_CIFAR10_COPY is set: the copy is required"; exit 1; }
else
	@$(MAKE) --no-print-directory $(CIFAR_DIR)/.extracted
endif

# pytest exits 5 when it collects nothing: that is not a failure of the suite.
test-unit: $(STAMP) cifar-copy
	$(PY) -m pytest -q tests || [ $$? -eq 5 ]

# On a machine with CUDA: the GPU-only tests, notebook 03 on the GPU, the GPU benchmark.
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py

# On a machine with CUDA: notebooks 02-04 in the full profile on the CIFAR-10 JPEG copy with a vgg13_bn teacher
# trained there (tools/gpu_record.py says what comes back). `make gpu-record REHEARSE=1` checks it on the CPU.
gpu-record: $(STAMP)
	$(PY) tools/gpu_record.py $(if $(REHEARSE),--rehearse-on-cpu)

test-notebooks: $(STAMP)
	env $(SMOKE_ENV) $(PY) -m pytest -q --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg \
		--nbval-cell-timeout=900 -p no:cacheprovider notebooks || [ $$? -eq 5 ]
	# Notebook 03 again, in the configuration a CUDA user gets (online teacher, augmentation on the
	# device tensor, bf16 autocast, lockstep students), here on the CPU.
	env $(SMOKE_ENV) KD_TEACHER_MODE=online KD_AUGMENT=1 KD_PRECISION=bf16 $(PY) -m pytest -q --nbval-lax \
		--nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider notebooks/03_distill_students.ipynb

# Notebooks 02-04 in the smoke profile on real CIFAR-10 photos (the JPEG copy), with a CNN teacher trained here.
test-notebooks-cifar: $(STAMP) cifar-copy
	@if [ -f $(CIFAR_DIR)/.extracted ]; then \
		env $(CIFAR_ENV) $(PY) -m pytest -q --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg \
			--nbval-cell-timeout=900 -p no:cacheprovider notebooks/02_teacher.ipynb \
			notebooks/03_distill_students.ipynb notebooks/04_analysis.ipynb; \
	else echo "skipped: notebooks 02-04 on CIFAR-10 (JPEG copy): no copy here"; fi

# Execute every notebook in order, headless, writing executed copies to runs/executed/.
# Figures go to runs/figures/ (or KD_FIGURES_DIR). Choose data and size with KD_DATASET / KD_PROFILE.
tutorial: $(STAMP)
	mkdir -p runs/executed
	: > runs/executed/timings.txt
	for nb in notebooks/[0-9]*.ipynb; do \
		echo "== $$nb"; start=$$(date +%s); \
		MPLBACKEND=Agg $(JUPYTER) nbconvert --to notebook --execute --ExecutePreprocessor.timeout=-1 \
			--output-dir runs/executed "$$nb" || exit 1; \
		echo "$$nb $$(( $$(date +%s) - start )) s" | tee -a runs/executed/timings.txt; \
	done

# The recorded run behind figures/ and the stored notebook outputs: the only target that
# writes tracked files. It starts from an empty runs/record/, so every number in it was
# computed in this run, and writes the run's provenance into figures/manifest.json.
RECORD_ENV := KD_DATASET=fashion-mnist KD_PROFILE=cpu KD_RUNS_DIR=$(CURDIR)/runs/record KD_FIGURES_DIR=$(CURDIR)/figures
record: $(STAMP)
	rm -rf runs/record
	rm -f figures/*.png figures/manifest.json
	env $(RECORD_ENV) $(MAKE) tutorial
	cp runs/executed/[0-9]*.ipynb notebooks/
	env $(RECORD_ENV) $(PY) tools/record_provenance.py runs/executed/timings.txt

# Record ONE notebook (its stored outputs, its figures, its manifest entry) without re-running the
# series: for a notebook added after the last `make record`. It uses the runs already in runs/record/
# (a notebook whose teacher is not there trains it first), and says so in figures/manifest.json.
record-notebook: $(STAMP)
	@test -f "$(NB)" || { echo "usage: make record-notebook NB=notebooks/<name>.ipynb"; exit 2; }
	mkdir -p runs/executed
	start=$$(date +%s); env $(RECORD_ENV) MPLBACKEND=Agg $(JUPYTER) nbconvert --to notebook --execute \
		--ExecutePreprocessor.timeout=-1 --output-dir runs/executed "$(NB)" || exit 1; \
		echo "$(NB) $$(( $$(date +%s) - start )) s" > runs/executed/timing-one.txt
	cp runs/executed/$(notdir $(NB)) notebooks/
	env $(RECORD_ENV) $(PY) tools/record_provenance.py runs/executed/timing-one.txt --alone

# Issue 21's run of the course on CIFAR-10 photos without a GPU: notebooks 02-04 in the cpu profile on the JPEG
# copy, with the CNN teacher, from an empty runs/record-cifar/. Its figures, results, provenance and executed
# notebooks go to figures/cifar10-jpeg-cpu/; the notebooks' stored outputs stay those of `make record`.
RECORD_CIFAR_ENV := KD_DATASET=imagefolder:$(CIFAR_DIR) KD_PROFILE=cpu KD_TEACHER=train MPLBACKEND=Agg \
                    KD_RUNS_DIR=$(CURDIR)/runs/record-cifar KD_FIGURES_DIR=$(CURDIR)/figures/cifar10-jpeg-cpu \
                    KD_RECORD_COMMAND="make record-cifar-cpu"
# Without the copy it stops in cifar-copy, before deleting the recorded figures.
record-cifar-cpu: export KD_REQUIRE_CIFAR10_COPY := 1
record-cifar-cpu: $(STAMP) cifar-copy
	rm -rf runs/record-cifar figures/cifar10-jpeg-cpu runs/executed-cifar
	mkdir -p runs/executed-cifar figures/cifar10-jpeg-cpu
	for nb in notebooks/02_teacher.ipynb notebooks/03_distill_students.ipynb notebooks/04_analysis.ipynb; do \
		start=$$(date +%s); env $(RECORD_CIFAR_ENV) $(JUPYTER) nbconvert --to notebook --execute \
			--ExecutePreprocessor.timeout=-1 --output-dir runs/executed-cifar "$$nb" || exit 1; \
		echo "$$nb $$(( $$(date +%s) - start )) s" | tee -a runs/executed-cifar/timings.txt; \
	done
	cp runs/executed-cifar/*.ipynb figures/cifar10-jpeg-cpu/
	env $(RECORD_CIFAR_ENV) $(PY) tools/record_provenance.py runs/executed-cifar/timings.txt

lab: $(STAMP)
	$(JUPYTER) lab notebooks

bench: $(STAMP)
	$(PY) benchmarks/benchmark_distillation.py --device cpu

clean:
	rm -rf runs/executed runs/smoke runs/smoke-figures runs/smoke-cifar runs/smoke-cifar-figures

# Notebooks 01's and 02's T sliders, and notebook 04b's training playground, in real
# JupyterLab + headless Chromium (tests/browser/; all three took 81-85 s on our 2-core
# machine; the installs add about 30 s the first time). Needs Debian's chromium (no browser
# download: Playwright drives /usr/bin/chromium). Screenshots go to runs/browser/.
test-browser: $(STAMP)
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium chromium-driver; \
		else sudo apt-get update -q && sudo apt-get install -y -q chromium chromium-driver; fi; }
	$(PY) -c "import playwright" 2>/dev/null || $(PY) -m pip install -q playwright
	$(PY) -m pytest -q -s -rs -m browser -p no:cacheprovider tests/browser
