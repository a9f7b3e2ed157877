# Thin aliases for dev.py (which needs only python3): make demo | test | bench
.PHONY: demo test bench
demo:
	python3 dev.py demo
test:
	python3 dev.py test
bench:
	python3 dev.py bench
