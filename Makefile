# Two entry points: `make run` (the embedded default) and `make test` (the whole suite).
# Each creates .venv from pyproject.toml when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test bench bench-compose faults clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { echo "make: $(PYTHON) cannot create virtual environments; on Debian: apt-get install python3-venv"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev,test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/printroom dev

test: $(STAMP)
	$(VENV)/bin/python -m pytest

bench: $(STAMP)
	$(VENV)/bin/python bench/order_emails.py

bench-compose: $(STAMP)
	$(VENV)/bin/python bench/compose.py

faults: $(STAMP)
	$(VENV)/bin/python bench/faults.py

clean:
	rm -rf $(VENV) var
