# Two commands matter: `make demo` and `make test`. Both create .venv and install from pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test bench lint clean deps

# Debian packages the project needs: the Spanish/English Bible corpus (SWORD modules), the speech
# corpus (espeak-ng) and Cairo, which rasterises engraved scores (vision). Installed when this
# machine allows (root + apt-get); otherwise the one install line is printed once and the tests
# that need them skip, naming it.
APT_PACKAGES := sword-text-sparv sword-text-web espeak-ng libcairo2

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done | xargs); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages: $$missing"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; } >/dev/null 2>&1 \
	      || echo "note: could not install them; the tests that need them skip. Run: apt-get install $$missing"; \
	  else \
	    echo "note: the tests that need Debian packages skip. Run: sudo apt-get install $$missing"; \
	  fi; \
	fi

demo: deps $(STAMP)
	$(PY) -m apps.translation.demo

test: deps $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(PY) benchmarks/transformer_vs_hf.py
	$(PY) benchmarks/g2p_cmudict.py

lint: $(STAMP)
	$(PY) -m pip install -q ruff && $(VENV)/bin/ruff check core apps tests benchmarks

clean:
	rm -rf runs lightning_logs .pytest_cache
