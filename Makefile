# nestkit: see README.md. The pipeline lives in rig/, one script per stage:
#   base -> prepare (series) -> build -> pack-initramfs -> boot -> collect
export NESTKIT_T0 := $(shell date +%s)

.PHONY: help deps build check check-series demo bench fuzz unit deb dkms pq-edit pq-export clean distclean

help:
	@echo "make demo          build/reuse the kernel, boot it on emulated VMX and SVM, run the demo VMM"
	@echo "make check         host checks + selftests on both vendors; ends with 'check: N passed, N failed'"
	@echo "make check-series  every prefix of the series builds (slow)"
	@echo "make bench         snapshot backends vs stop-the-world copy, in instructions (not a test)"
	@echo "make pq-edit       editable kernel tree in work/linux (base + series as commits)"
	@echo "make pq-export     write work/linux's commits back to kernel/series + kernel/patches"
	@echo "make unit          userspace unit tests only (ASan + UBSan)"
	@echo "make fuzz          libFuzzer on the parsers of guest bytes, FUZZ_SECONDS (600) per target"
	@echo "make deb           Debian packages in out/deb: nestkit-dkms, libnestkit-dev, nestkit"
	@echo "make dkms          only nestkit-dkms (the KVM modules, built by DKMS on install)"
	@echo "make deps          install the Debian packages the rig needs"

deps:
	@rig/deps.sh

build: deps
	@rig/build.sh

check:
	@rig/check.sh

check-series: deps
	@rig/check-series.sh

demo:
	@rig/demo.sh

bench:
	@rig/bench.sh

fuzz: deps
	@rig/fuzz.sh long out/fuzz

unit:
	@$(MAKE) -s -C userspace test

deb: deps
	@rig/deb.sh all

dkms: deps
	@rig/deb.sh dkms

pq-edit: deps
	@rig/pq.sh edit $(DIR)

pq-export:
	@rig/pq.sh export $(DIR)

clean:
	rm -rf out userspace/build

# Also drops the build cache (base tree, kernel builds, ccache).
distclean: clean
	rm -rf "$${NESTKIT_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/nestkit}"
