# The course's two commands (see README.md):
#   make run    set up, then run every lesson in quick mode and print the report
#   make test   set up, then run the test suite and the linters
#   make site   set up, then build the course website into build/site/ (executes nothing)
# Setup creates .venv in the repo on first use and reinstalls only when
# pyproject.toml, requirements-dev.txt or constraints.txt change.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run full test lint lowest setup site site-refresh constraints gpu gpu-jax lab bench clean

run: $(STAMP)
	$(PY) -m cnn_course run --quick

full: $(STAMP)
	$(PY) -m cnn_course run

# Two workers, each taking whole test files (a module's fixtures are built once): 572 s against 683 s
# serial for three lesson test files and the unit tests on 2 shared CPU cores (measured back to back).
# Then the linters (`make lint`), so CI, which runs exactly `make test`, checks the style too.
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile
	$(MAKE) --no-print-directory lint

# The rules are pyproject.toml's [tool.ruff]; `ruff check --fix` and `ruff format` apply them.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Are pyproject.toml's lower bounds true? The lowest versions it allows, in build/lowest, and the
# quick lesson tests on them (tools/lowest.sh; several minutes and about 2 GB the first time).
lowest: $(STAMP)
	PYTHON=$(PYTHON) UV=$(VENV)/bin/uv tools/lowest.sh

setup: $(STAMP)

# The website: each lesson with the outputs of its recorded full run (website/runs/).
site: $(STAMP)
	$(PY) website/build.py build

# Run lessons at full length and record them for the site: make site-refresh [LESSONS="a b"]
site-refresh: $(STAMP)
	$(PY) website/build.py refresh $(LESSONS)

$(STAMP): pyproject.toml requirements-dev.txt constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed; this is " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# The package (editable) with both backends and Jupyter Lab, and the test tools,
	@# at the versions the tests passed with (constraints.txt; see `make constraints`).
	$(PY) -m pip install --quiet -c constraints.txt -e ".[tensorflow,jax,lab]" -r requirements-dev.txt
	@# Jupyter's kernel for this venv: TensorFlow's C++ log lines (absl, oneDNN,
	@# cpu_feature_guard) go to the terminal, not into the notebooks' cells; the
	@# runner starts its kernels with the same setting.
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (cnn-course)" --env TF_CPP_MIN_LOG_LEVEL 2
	@mkdir -p $(VENV)/etc/ipython
	@echo "c.IPKernelApp.capture_fd_output = False  # C++ libraries' stderr stays out of the cells" > $(VENV)/etc/ipython/ipython_kernel_config.py
	@touch $(STAMP)

# Record the versions installed in .venv as constraints.txt (after a passing
# `make test`, when pyproject.toml's ranges or a new release should move them).
constraints: $(STAMP)
	$(PY) tools/record_constraints.py

# Swap the CPU-only TensorFlow for the CUDA build (Linux with an NVIDIA GPU).
gpu: $(STAMP)
	$(PY) -m pip uninstall --yes tensorflow-cpu
	$(PY) -m pip install "tensorflow[and-cuda]>=2.16,<3"

# Add JAX's CUDA plugin (Linux with an NVIDIA GPU); then run with KERAS_BACKEND=jax.
gpu-jax: $(STAMP)
	$(PY) -m pip install "jax[cuda12]>=0.5.3,<1"

# JupyterLab at the repository, with the first lesson open.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab mnist-mlp/mnist_mlp.ipynb

bench: $(STAMP)
	$(PY) benchmarks/data_speed.py
	$(PY) benchmarks/train_speed.py

clean:
	rm -rf build .pytest_cache .hypothesis
