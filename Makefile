# The two commands of the README: `make demo` and `make test`.
# Everything they need is installed here, so a fresh Debian machine works.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the kiosk needs at run time, and those the test suite adds.
# python3-venv makes `python3 -m venv` work on Debian's Python; python3-evdev
# saves building evdev from source where the venv sees Debian's packages.
APT_RUNTIME := libzbar0 python3-venv python3-evdev
APT_TEST := shellcheck systemd faketime

.PHONY: install install-test demo test lint typecheck bench clean

install: $(VENV)/.installed

# picamera2 and libcamera come from Raspberry Pi OS's apt packages, so the venv
# must see the system site-packages.
$(VENV)/.installed: pyproject.toml
	./scripts/ensure-system-packages $(APT_RUNTIME)
	test -x $(BIN)/python || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed
	./scripts/ensure-system-packages $(APT_TEST)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: install
	$(BIN)/kiosk demo

test: install-test lint typecheck
	$(BIN)/python -m pytest -q

lint: install-test
	$(BIN)/ruff check kiosk tests benchmarks
	$(BIN)/ruff format --check kiosk tests benchmarks

typecheck: install-test
	$(BIN)/mypy

bench: install-test
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
