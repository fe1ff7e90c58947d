# clusterlab recipes. `just --list` shows them.

# Train every pending cell of experiments/NAME.yaml, then print its table.
sweep NAME="smoke" *ARGS:
    cargo run --release -- sweep {{ if path_exists("experiments/" + NAME + ".yaml") == "true" { "experiments/" + NAME + ".yaml" } else { NAME } }} {{ARGS}}

# List the cells of experiments/NAME.yaml with run id and status; run nothing.
dry NAME="smoke":
    cargo run --release -- sweep experiments/{{NAME}}.yaml --dry-run

# Print the results table of a grid and write reports/NAME/table.md.
report NAME="smoke":
    cargo run --release -- report {{NAME}}

# Check our losses and metrics against the independent golden cases.
golden:
    cargo run --release -- golden tests/golden

# The test suite (the README's test command).
test:
    cargo test --release

# What CI runs: install test tools, fmt, tests, clippy.
ci:
    bash .ci/run
