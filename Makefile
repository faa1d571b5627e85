# Two entry points: `make run` (the embedded default) and `make test` (the whole suite).
# Each creates .venv from pyproject.toml when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test bench bench-compose bench-desk bench-smtp faults screenshots clean

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

# SMTP sessions reused against one per email, to a STARTTLS+AUTH relay (aiosmtpd, trustme certificate).
bench-smtp: $(STAMP)
	$(VENV)/bin/python bench/smtp_reuse.py

faults: $(STAMP)
	$(VENV)/bin/python bench/faults.py

bench-desk: $(STAMP)
	$(VENV)/bin/python bench/desk.py

# The README's pictures of the operators' desk, taken by its browser test in Debian's Chromium.
screenshots: $(STAMP)
	PRINTROOM_SCREENSHOTS=docs/desk $(VENV)/bin/python -m pytest -q tests/test_desk_browser.py -k five_actions

clean:
	rm -rf $(VENV) var
