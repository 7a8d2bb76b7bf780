"""Linear probes on the residual stream (issue 9): which board properties are linearly readable
after each block, and which dictionary features write what the probes read.

``families`` (properties, sites, labels) → ``linear`` (the probes) → ``train`` / ``evaluate`` /
``io`` → ``alignment`` (probe directions against dictionary decoder rows)."""
