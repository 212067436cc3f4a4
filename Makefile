# Kthena developer entry points. `make help` lists them.

SHELL := /usr/bin/env bash -o pipefail
GO ?= go
BIN := $(CURDIR)/bin
CODEGEN_MOD := hack/tools/codegen
CONTROLLER_GEN := $(BIN)/controller-gen
STATICCHECK := $(BIN)/staticcheck
# Test flags; CI may add -race or -v.
TEST_FLAGS ?=

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build every binary into bin/.
	$(GO) build -o $(BIN)/ ./cmd/...

.PHONY: envtest-bins
envtest-bins: ## Build (once, cached) kube-apiserver, etcd and kubectl; prints their directory last.
	@bash hack/envtest-bins.sh

.PHONY: test
test: ## Run every test: unit, integration against a real API server, end to end.
	@bash hack/system-deps.sh
	@assets=$$(bash hack/envtest-bins.sh | tail -n 1) && \
	KUBEBUILDER_ASSETS=$$assets $(GO) test $(TEST_FLAGS) ./...
	@$(MAKE) --no-print-directory fuzz

.PHONY: up
up: build kubectl ## Run the whole system locally with a demo model (kthena up --demo); Ctrl-C stops it.
	$(BIN)/kthena up --demo

.PHONY: kubectl
kubectl: ## Link bin/kubectl to the kubectl built with the control plane.
	@assets=$$(bash hack/envtest-bins.sh | tail -n 1) && mkdir -p $(BIN) && ln -sf $$assets/kubectl $(BIN)/kubectl

.PHONY: e2e
e2e: ## Run only the end-to-end suite on the local platform.
	@assets=$$(bash hack/envtest-bins.sh | tail -n 1) && \
	KUBEBUILDER_ASSETS=$$assets $(GO) test $(TEST_FLAGS) -count=1 -v ./test/e2e/...

FUZZTIME ?= 50000x
.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME executions.
	@bash hack/fuzz.sh $(FUZZTIME)

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Regenerate deepcopy, CRDs and webhook manifests.
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd:allowDangerousTypes=true paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(GO) run ./hack/crdpatch config/crd/bases/*.yaml
	$(CONTROLLER_GEN) rbac:roleName=kthena-controller-manager paths="./internal/controller/...;./internal/controllermanager/..." output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) webhook paths=./internal/webhook/... output:webhook:artifacts:config=config/webhook

.PHONY: verify-generated
verify-generated: generate ## Fail when generated files are stale.
	@if [ -n "$$(git status --porcelain -- api config)" ]; then git status --short -- api config; git diff -- api config | head -50; \
		echo "generated files are stale: run 'make generate' and commit" >&2; exit 1; fi

.PHONY: lint
lint: $(STATICCHECK) ## gofmt, go vet and staticcheck.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

.PHONY: verify-imports
verify-imports: ## Scheduler plugins may import only the framework's contracts.
	@bash hack/verify-imports.sh

.PHONY: verify
verify: lint verify-generated verify-imports verify-chart ## Everything CI checks besides tests.

# Both tools in one go build: their packages are compiled once and only the
# linking is per binary. hack/tools/codegen pins the dependencies it shares
# with the main module at the main module's versions, so they come from the
# Go build cache when the module was built first.
$(CONTROLLER_GEN) $(STATICCHECK) &: $(CODEGEN_MOD)/go.mod
	cd $(CODEGEN_MOD) && GOFLAGS=-mod=mod $(GO) build -o $(BIN)/ sigs.k8s.io/controller-tools/cmd/controller-gen honnef.co/go/tools/cmd/staticcheck

.PHONY: clean
clean: ## Remove build output.
	rm -rf $(BIN)

# --- Helm chart (charts/kthena) and container images (build/<binary>/Dockerfile) ---

IMAGE_REGISTRY ?= ghcr.io/kthena
IMAGE_TAG ?= $(shell awk '$$1=="appVersion:" {gsub(/"/, "", $$2); print $$2}' charts/kthena/Chart.yaml)
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
# Images built by `make images`: one per binary that runs in a cluster, plus the CLI.
IMAGES ?= kthena-controller-manager kthena-router kthena-sim kthena
# --push (to IMAGE_REGISTRY) or --load (into the local engine; one platform only).
IMAGE_OUTPUT ?= --push

.PHONY: helm
helm: ## Build (once, cached) the Helm client from source; prints its path last.
	@bash hack/helm.sh

.PHONY: chart-generate
chart-generate: ## Copy the CRDs into the chart, regenerate its RBAC rules and webhooks (hack/chartgen).
	@$(GO) run ./hack/chartgen

.PHONY: verify-chart
verify-chart: chart-generate ## Fail when the chart's generated files are stale.
	@if [ -n "$$(git status --porcelain -- charts)" ]; then git status --short -- charts; \
		echo "the chart is stale or has uncommitted changes: run 'make chart-generate' and commit" >&2; exit 1; fi

.PHONY: chart-test
chart-test: ## Lint, render and install the chart into a real API server (test/chart).
	@assets=$$(bash hack/envtest-bins.sh | tail -n 1) && \
	KUBEBUILDER_ASSETS=$$assets $(GO) test $(TEST_FLAGS) -count=1 ./test/chart/...

.PHONY: images-binaries
images-binaries: ## Build the images' binaries here, with the Dockerfiles' flags (static, stripped).
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/static/ $(addprefix ./cmd/,$(IMAGES))

.PHONY: images
images: ## Build (and push) the container images with docker buildx (multi-platform) or podman (this platform).
	@for img in $(IMAGES); do \
		ref=$(IMAGE_REGISTRY)/$$img:$(IMAGE_TAG); echo "==> $$ref"; \
		if docker buildx version >/dev/null 2>&1; then \
			docker buildx build --platform $(IMAGE_PLATFORMS) $(IMAGE_OUTPUT) --build-arg VERSION=$(IMAGE_TAG) -f build/$$img/Dockerfile -t $$ref . || exit 1; \
		elif command -v podman >/dev/null 2>&1; then \
			podman build --build-arg VERSION=$(IMAGE_TAG) -f build/$$img/Dockerfile -t $$ref . || exit 1; \
			if [ "$(IMAGE_OUTPUT)" = "--push" ]; then podman push $$ref || exit 1; fi; \
		else echo "images: no container builder (docker buildx or podman) found; 'make images-binaries' builds the binaries alone" >&2; exit 1; fi; \
	done
