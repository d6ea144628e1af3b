# dsc_mm: every command sets up its own environment first (idempotent, fast when up to date).
# Overridable: VENV, PYTHON, TORCH_SPEC, FORCE_CUDA, MMCV_CUDA_ARCH, DSC_MM_CACHE (see tools/setup_env.sh),
# PYTEST_ARGS (extra pytest options), PYTEST_XDIST (the test workers), DEMO_DIR (where `make demo` writes).
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= work_dirs/demo
PYTEST_ARGS ?=
export VENV

.PHONY: install demo test env clean-venv

install:
	@bash tools/setup_env.sh

demo: install
	$(PY) tools/benchmark.py --suite tiny --work-dir $(DEMO_DIR)

# pytest exits 5 when it collected no test: a broken suite, reported as a failure, never as success.
# --durations=15 lists the slowest tests at the end (what to look at when the suite slows down).
# PYTEST_XDIST: two pytest-xdist workers, each test file on one of them (tests/conftest.py groups
# them; the slowest groups start first, so no reordering by size); PYTEST_XDIST= runs serially.
PYTEST_XDIST ?= -n 2 --dist loadgroup --no-loadscope-reorder
test: install
	@$(PY) -m pytest tests $(PYTEST_XDIST) --durations=15 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; that is a failure." >&2; fi; \
	exit $$rc

env: install
	$(PY) -m dsc_mm.env

clean-venv:
	rm -rf $(VENV)

# Mutation testing of the method's core with mutmut (docs/mutation.md): every area by default,
# MUTATION_AREAS="transfer results" for some (`python tools/mutation.py --list` names them).
# One worker at low priority; the tool is installed into the venv if it is missing.
MUTATION_AREAS ?=
.PHONY: mutation
mutation: install
	@$(PY) -c 'import mutmut' 2>/dev/null || $(PY) -m pip install -q "$$(grep -E '^mutmut==' requirements.txt)"
	nice -n 10 $(PY) tools/mutation.py $(MUTATION_AREAS)
