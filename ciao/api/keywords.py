"""The keywords of `ciao.run` and options of `ciao submit` that are written on each
role's line (read without importing the interpreter: the CLI's parser is built at every
`ciao` start, the kernel's too)."""

#: Keywords that are replica counts, in the order the lines are written.
ROLES = ("chief", "master", "ps", "worker", "evaluator", "nodes")
#: Keywords written on every role's line (resources of each replica).
RESOURCES = ("cpu", "memory", "gpu")
