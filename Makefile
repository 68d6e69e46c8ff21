# Convenience targets; the README's two commands are ./scripts/demo and ./scripts/test.
.PHONY: demo test lint fmt bench
demo:
	./scripts/demo
test:
	./scripts/test
lint:
	./scripts/bootstrap && .venv/bin/ruff check src tests bench scripts && .venv/bin/mypy
fmt:
	.venv/bin/ruff format src tests bench scripts
bench:
	./scripts/bootstrap && .venv/bin/python bench/run_bench.py
