"""The command line, above every other layer: `printroom dev` (the embedded default), `worker`, `settings`, `smtp`,
`templates`, `diagram`. Nothing below imports it."""
