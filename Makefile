# larder — see README.md. Every target runs from a clean checkout.
GO       ?= go
PKGS     := ./...
BIN      := bin/larder
FIXTURES ?= $(CURDIR)/.cache/fixtures

.PHONY: all build install uninstall test test-long bench fuzz demo lint tools fixtures clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/larder

# make install [PREFIX=/usr/local] [DESTDIR=/staging]: the binary, its man
# page and its bash, zsh and fish completions, the last three made by the
# binary from its commands (larder man, larder completion SHELL).
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
install: build
	@set -e; gen=$$(mktemp -d); trap 'rm -rf "$$gen"' EXIT; \
	"$(abspath $(BIN))" man > "$$gen/larder.1"; \
	for sh in bash zsh fish; do "$(abspath $(BIN))" completion $$sh > "$$gen/$$sh"; done; \
	set -x; \
	install -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(MANDIR)/man1" "$(DESTDIR)$(BASHCOMPDIR)" "$(DESTDIR)$(ZSHCOMPDIR)" "$(DESTDIR)$(FISHCOMPDIR)"; \
	install -m 0755 "$(BIN)" "$(DESTDIR)$(BINDIR)/larder"; \
	install -m 0644 "$$gen/larder.1" "$(DESTDIR)$(MANDIR)/man1/larder.1"; \
	install -m 0644 "$$gen/bash" "$(DESTDIR)$(BASHCOMPDIR)/larder"; \
	install -m 0644 "$$gen/zsh" "$(DESTDIR)$(ZSHCOMPDIR)/_larder"; \
	install -m 0644 "$$gen/fish" "$(DESTDIR)$(FISHCOMPDIR)/larder.fish"

uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/larder" "$(DESTDIR)$(MANDIR)/man1/larder.1" "$(DESTDIR)$(BASHCOMPDIR)/larder" \
	  "$(DESTDIR)$(ZSHCOMPDIR)/_larder" "$(DESTDIR)$(FISHCOMPDIR)/larder.fish"

# The README's test command: unit and integration tests (needs the packages
# .ci/run installs: PostgreSQL, gzip, tar, python3, pigz, ...).
test:
	$(GO) test -count=1 -timeout 60m $(PKGS)

# The full differential matrix and long runs: about 50 minutes on 2 cores
# (47 min measured, nearly all the zlib matrix), too long to add to CI's
# 90 minutes safely; run it before a release and after touching an engine.
# CI runs make test (the matrix's fast subset) and make fuzz.
test-long:
	LARDER_LONG=1 $(GO) test -count=1 -timeout 80m $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 120m $(PKGS)

# Bounded fuzzing of every parser; each target runs for FUZZTIME (a count of
# executions: a duration trips golang/go#75804 before Go 1.27).
FUZZTIME ?= 20000x
fuzz:
	@set -e; for p in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz' || true); do \
	    echo "fuzz $$p $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 3s $$p; \
	  done; \
	done

demo: build
	./scripts/demo.sh

# gofmt, go vet, staticcheck (with its unused-code check) and errcheck
# (every error handled, or dropped as _ = with a comment saying why).
# The linters are required: make tools installs them.
STATICCHECK ?= staticcheck
ERRCHECK    ?= errcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@command -v $(STATICCHECK) >/dev/null 2>&1 || { echo "lint: $(STATICCHECK) is not installed (make tools installs it)"; exit 1; }
	$(STATICCHECK) $(PKGS)
	@command -v $(ERRCHECK) >/dev/null 2>&1 || { echo "lint: $(ERRCHECK) is not installed (make tools installs it)"; exit 1; }
	$(ERRCHECK) -ignoretests $(PKGS)

tools:
	$(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	$(GO) install github.com/kisielk/errcheck@v1.30.0

# Larger fixture series, cached outside git (needs PostgreSQL).
fixtures:
	$(GO) run ./internal/cmd/mkfixtures -out $(FIXTURES)

clean:
	rm -rf bin .cache
